"""Named registries: methods, granularities, datasets and models.

A registry maps a name to an object. Registering a name twice is an error, and looking up an
unknown name raises `UnknownNameError` whose message suggests the near matches.
"""
import dataclasses
import difflib
import importlib
import pkgutil
from typing import Any, Iterator

from perjax.taxonomy import Granularity, Technique


class UnknownNameError(KeyError):
  """An unknown registry name; str() is a one-line message with suggestions."""

  def __str__(self):
    return self.args[0]


class DuplicateNameError(ValueError):
  pass


class Registry:
  """A flat name -> entry mapping for one kind of thing."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, Any] = {}

  def register(self, name: str, entry: Any) -> Any:
    if name in self._entries:
      raise DuplicateNameError(f"{self.kind} {name!r} is already registered")
    self._entries[name] = entry
    return entry

  def get(self, name: str) -> Any:
    if name not in self._entries:
      near = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
      hint = f"; did you mean {', '.join(map(repr, near))}?" if near else (
          f"; known: {', '.join(sorted(self._entries)) or 'none'}")
      raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}")
    return self._entries[name]

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(sorted(self._entries))

  def items(self):
    return sorted(self._entries.items())

  def names(self) -> list[str]:
    return sorted(self._entries)


@dataclasses.dataclass(frozen=True)
class MethodInfo:
  """Registry metadata of a method: its place in the survey's taxonomy."""
  name: str
  technique: Technique
  granularities: tuple[Granularity, ...]
  section: str
  reference: str

  def as_json(self) -> dict:
    return {"name": self.name, "technique": self.technique.value,
            "granularities": [g.value for g in self.granularities],
            "section": self.section, "reference": self.reference}


METHODS = Registry("method")
GRANULARITIES = Registry("granularity")
DATASETS = Registry("dataset")
MODELS = Registry("model")

_PLUGIN_PACKAGES = ("granularity", "methods")
_loaded = False


def load_plugins() -> None:
  """Imports the built-in data sets and every module of the `granularity` and `methods`
  packages, so they register.

  The core never imports a method by name; it discovers them here.
  """
  global _loaded
  if _loaded:
    return
  _loaded = True
  importlib.import_module("perjax.data")  # registers the built-in data sets
  for package_name in _PLUGIN_PACKAGES:
    package = importlib.import_module(package_name)
    for module in pkgutil.walk_packages(package.__path__, package_name + "."):
      importlib.import_module(module.name)


def methods_for(technique: Technique | None = None,
                granularity: Granularity | None = None) -> list[Any]:
  """Registered methods filtered by axis (each entry has an `.info: MethodInfo`)."""
  load_plugins()
  out = []
  for _, method in METHODS.items():
    info = method.info
    if technique is not None and info.technique != technique:
      continue
    if granularity is not None and granularity not in info.granularities:
      continue
    out.append(method)
  return out

