"""Retrieval over user / persona / global profile pools: bm25, dense, recency, random.

  from perjax.retrieval import retrieve
  items = retrieve(task.splits["test"], pool_by="user", retriever="bm25", k=4)
"""
from perjax.retrieval.base import RETRIEVERS, Retriever, make_retriever
from perjax.retrieval import bm25, dense, simple  # noqa: F401  (register the retrievers)
from perjax.retrieval.bm25 import BM25Retriever
from perjax.retrieval.dense import DenseRetriever
from perjax.retrieval.pools import pool_key, retrieve
from perjax.retrieval.simple import RandomRetriever, RecencyRetriever

__all__ = ["RETRIEVERS", "Retriever", "make_retriever", "retrieve", "pool_key", "BM25Retriever",
           "DenseRetriever", "RandomRetriever", "RecencyRetriever"]
