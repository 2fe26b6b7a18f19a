"""Retrieval of profile items from a granularity's pools: bm25, dense, recency, random.

  from perjax.retrieval import retrieve
  items = retrieve(task.splits["test"], retriever="bm25", k=4)   # each user's own profile
  items = retrieve(examples, "bm25", 4, pools=Pools(sources, groups))   # a grouping's pools
"""
from perjax.retrieval.base import RETRIEVERS, Retriever, make_retriever
from perjax.retrieval import bm25, dense, simple  # noqa: F401  (register the retrievers)
from perjax.retrieval.bm25 import BM25Retriever
from perjax.retrieval.dense import DenseRetriever
from perjax.retrieval.pools import retrieve
from perjax.retrieval.simple import RandomRetriever, RecencyRetriever

__all__ = ["RETRIEVERS", "Retriever", "make_retriever", "retrieve", "BM25Retriever",
           "DenseRetriever", "RandomRetriever", "RecencyRetriever"]
