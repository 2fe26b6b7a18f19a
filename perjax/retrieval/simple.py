"""Query-blind baselines: the most recent items, and a seeded random draw."""
import numpy as np

from perjax.data.schema import stable_id
from perjax.retrieval.base import RETRIEVERS


@RETRIEVERS.register("recency")
class RecencyRetriever:
  """Newest first by item time; items without times count as ordered oldest to newest."""

  def index(self, items, texts):
    keys = [(it.time if it.time is not None else float("-inf"), i) for i, it in enumerate(items)]
    return [i for _, i in sorted(keys, reverse=True)]

  def search(self, index, queries, k, keys):
    return [index[:k] for _ in queries]


@RETRIEVERS.register("random")
class RandomRetriever:
  """A random draw per example, the same on every run for a given seed and example id."""

  def __init__(self, seed: int = 0):
    self.seed = seed

  def index(self, items, texts):
    return len(items)

  def search(self, index, queries, k, keys):
    out = []
    for key in keys:
      rng = np.random.default_rng(int(stable_id(self.seed, key), 16))
      out.append(list(rng.permutation(index)[:k]))
    return out

