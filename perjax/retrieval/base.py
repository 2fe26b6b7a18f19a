"""The retriever interface and its registry.

A retriever indexes one pool of profile items once (`index`) and answers a batch of queries
against it (`search`), returning for each query pool positions best first. Which pool an example
searches, and which items it may see, is decided in `perjax.retrieval.pools`.
"""
from typing import Any, Protocol, Sequence

from perjax.data.schema import ProfileItem
from perjax.registry import RETRIEVERS


class Retriever(Protocol):
  def index(self, items: Sequence[ProfileItem], texts: list[str]) -> Any:
    """Builds the index of one pool (`texts[i]` is the text of `items[i]`)."""

  def search(self, index: Any, queries: list[str], k: int, keys: list[str]) -> list[list[int]]:
    """Up to k pool positions per query, best first. `keys` are the examples' ids (they seed
    per-example randomness)."""


def make_retriever(name: "str | Retriever", **options) -> Retriever:
  """A retriever by registered name (bm25, dense, recency, random), or one passed through."""
  if not isinstance(name, str):
    return name
  return RETRIEVERS.get(name)(**options)
