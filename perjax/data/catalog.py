"""Registered data sets: each is a builder function `(**params) -> Task` plus its metadata."""
import dataclasses
import inspect
from typing import Callable

from perjax.data.schema import Task
from perjax.errors import ConfigError
from perjax.registry import DATASETS


@dataclasses.dataclass(frozen=True)
class DatasetBuilder:
  name: str
  granularity: str
  description: str
  split_kinds: tuple[str, ...]  # the values its `split=` parameter accepts, default first
  build: Callable[..., Task]

  def __call__(self, **params) -> Task:
    if "split" in params and params["split"] not in self.split_kinds:
      raise ConfigError(f"data set {self.name!r} has no {params['split']!r} split; choose one of "
                        f"{list(self.split_kinds)}")
    accepted = inspect.signature(self.build).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
      raise ConfigError(f"data set {self.name!r} takes no parameter(s) {unknown}; it takes "
                        f"{sorted(accepted)}")
    return self.build(**params)


def dataset(name: str, granularity: str, description: str, split_kinds=("user",)):
  """`@dataset(...)`: `DATASETS.register(name)` for a builder function, with its metadata."""
  def deco(fn):
    DATASETS.register(name, DatasetBuilder(name, granularity, description, tuple(split_kinds), fn),
                      origin=fn.__module__)
    return fn
  return deco


def load_dataset(name: str, **params) -> Task:
  """Builds a registered data set: `load_dataset("movielens-rating", split="time", seed=0)`."""
  import perjax.data  # noqa: F401  (registers the built-in builders)
  return DATASETS.get(name)(**params)
