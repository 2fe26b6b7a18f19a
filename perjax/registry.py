"""Named registries: one per kind of plugin (method, granularity, dataset, retriever, metric,
optimizer, model, objective), and the discovery of plugin modules.

Every kind registers the same way, as a decorator or as a call:

  @RETRIEVERS.register("bm25")
  class BM25Retriever: ...

  MODELS.register("smollm2-135m-instruct", ZooEntry(...))

Methods and granularities go through `perjax.method.register(Method(...))` and
`perjax.grouping.register(Grouping(...))`, which check the entry and then call the same
`register`. A name registered again by the module that registered it first (a re-import, a
config file loaded once per sweep run) replaces the entry; another module registering it is a
`DuplicateNameError`. Looking up an unknown name raises `UnknownNameError`, whose message
suggests the near matches (`suggest`).
"""
import contextlib
import dataclasses
import difflib
import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

from perjax.errors import ConfigError
from perjax.taxonomy import Granularity, Technique


class UnknownNameError(ConfigError, KeyError):
  """An unknown registry name; str() is a one-line message with suggestions."""

  def __str__(self):
    return self.args[0]


class DuplicateNameError(ConfigError, ValueError):
  """Two modules register the same name."""


def suggest(name: str, known: Iterable[str], *, list_known: bool = True) -> str:
  """The hint after an unknown name: "; did you mean 'x'?" for near matches, else the known
  names (or nothing when `list_known` is False)."""
  known = sorted(known)
  near = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
  if near:
    return f"; did you mean {', '.join(map(repr, near))}?"
  return f"; known: {', '.join(known) or 'none'}" if list_known else ""


def calling_module(skip: int = 0) -> str:
  """The `__name__` of the module whose code called the function calling this one (`skip`
  frames further up): where a registration comes from."""
  return sys._getframe(2 + skip).f_globals.get("__name__", "?")


_MISSING = object()


class Registry:
  """A flat name -> entry mapping for one kind of thing."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, Any] = {}
    self._origins: dict[str, str] = {}  # name -> the module that registered it
    _EVERY_REGISTRY.append(self)

  def register(self, name: str, entry: Any = _MISSING, *, origin: str | None = None) -> Any:
    """`register(name, entry)` registers `entry` and returns it; `@register(name)` registers the
    decorated function or class. `origin` (default: the calling module) tells a re-import,
    which replaces the entry, from a clash."""
    if entry is _MISSING:
      def decorate(obj):
        self.register(name, obj, origin=origin or getattr(obj, "__module__", None) or
                      calling_module())
        return obj
      return decorate
    origin = origin or calling_module()
    if name in self._entries and self._origins.get(name) != origin:
      raise DuplicateNameError(f"{self.kind} {name!r} is already registered (by "
                               f"{self._origins.get(name)}; again by {origin})")
    self._entries[name], self._origins[name] = entry, origin
    return entry

  def get(self, name: str) -> Any:
    if name not in self._entries:
      raise UnknownNameError(f"unknown {self.kind} {name!r}{suggest(name, self._entries)}")
    return self._entries[name]

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(sorted(self._entries))

  def items(self):
    return sorted(self._entries.items())

  def names(self) -> list[str]:
    return sorted(self._entries)

  @contextlib.contextmanager
  def temporary(self, name: str | None = None, entry: Any = _MISSING) -> Iterator["Registry"]:
    """A block whose registrations are undone on exit (big_vision's `temporary_ops`): tests
    register their plugins inside one, so none leaks into the next test. With `name` and
    `entry`, registers that entry for the block."""
    entries, origins = dict(self._entries), dict(self._origins)
    try:
      if name is not None:
        if entry is _MISSING:
          raise TypeError(f"temporary({name!r}) needs the entry to register")
        self.register(name, entry, origin=calling_module(1))
      yield self
    finally:
      self._entries.clear()
      self._entries.update(entries)
      self._origins.clear()
      self._origins.update(origins)


_EVERY_REGISTRY: list[Registry] = []  # in creation order; `temporary_registrations` restores them


@contextlib.contextmanager
def temporary_registrations(*registries: Registry) -> Iterator[None]:
  """`Registry.temporary` over several registries at once (default: every registry, those of
  other modules such as the task kinds included), for code that registers through
  `perjax.method.register`, `perjax.grouping.register` or a plugin file."""
  with contextlib.ExitStack() as stack:
    for registry in registries or tuple(_EVERY_REGISTRY):
      stack.enter_context(registry.temporary())
    yield


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
RETRIEVERS = Registry("retriever")
METRICS = Registry("metric")
OPTIMIZERS = Registry("optimizer")
OBJECTIVES = Registry("objective")  # training losses shared by methods (perjax.training.preference)

GRANULARITY_PACKAGE, METHOD_PACKAGE = "perjax.granularities", "perjax.methods"  # shipped.py
_loaded = False


def load_plugins() -> None:
  """Imports the built-in data sets and every module of the shipped plugin packages,
  `perjax.granularities` and `perjax.methods` (the folders granularity/ and methods/), so they
  register.

  The core never imports a method by name; it discovers them here.
  """
  global _loaded
  if _loaded:
    return
  _loaded = True
  importlib.import_module("perjax.data")  # registers the built-in data sets
  for package_name in (GRANULARITY_PACKAGE, METHOD_PACKAGE):
    import_package(package_name)


def import_package(package_name: str) -> None:
  """Imports every module of a plugin package, so they register (importing is idempotent)."""
  package = importlib.import_module(package_name)
  for module in pkgutil.walk_packages(package.__path__, package_name + "."):
    importlib.import_module(module.name)


def import_plugins(names: Iterable[str]) -> None:
  """Imports the built-in plugins, then each named plugin module (`config.plugins`): a module
  name importable from sys.path (e.g. via PYTHONPATH), or the path of a .py file. A module
  already imported is not run again."""
  load_plugins()
  for name in names:
    if name.endswith(".py"):
      _import_file(name)
      continue
    try:
      importlib.import_module(name)
    except ModuleNotFoundError as e:
      if e.name and name.startswith(e.name):  # the plugin itself, not one of its imports
        raise ConfigError(f"plugin module {name!r} not found on sys.path (add its folder to "
                          "PYTHONPATH, or name its .py file)") from None
      raise


def _import_file(path: str) -> None:
  file = Path(path).expanduser().resolve()
  if not file.is_file():
    raise ConfigError(f"plugin file {path!r} not found")
  # One stable module name per file, so a second import finds it in sys.modules.
  name = f"perjax_plugin_{file.stem}_{hashlib.sha1(str(file).encode()).hexdigest()[:8]}"
  if name in sys.modules or _imported_from(file):
    return
  spec = importlib.util.spec_from_file_location(name, file)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    del sys.modules[name]
    raise


def _imported_from(file: Path) -> bool:
  """Whether some module already came from `file` (e.g. imported by its module name): running
  it again would register its plugins a second time under another module name."""
  for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if path and Path(path).name == file.name and Path(path).resolve() == file:
      return True
  return False


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

