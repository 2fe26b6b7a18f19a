"""Sparse retrieval with BM25 (the bm25s library): the LaMP default retriever."""
import numpy as np

from perjax.retrieval.base import RETRIEVERS


@RETRIEVERS.register("bm25")
class BM25Retriever:
  def __init__(self, stopwords: str = "en", k1: float = 1.5, b: float = 0.75):
    self.stopwords, self.k1, self.b = stopwords, k1, b

  def index(self, items, texts):
    import bm25s
    from bm25s.tokenization import Tokenizer
    tokenizer = Tokenizer(stopwords=self.stopwords)
    ids = tokenizer.tokenize(texts, return_as="ids", show_progress=False)
    model = bm25s.BM25(k1=self.k1, b=self.b)
    model.index(ids, show_progress=False)
    return tokenizer, model, len(texts)

  def search(self, index, queries, k, keys):
    tokenizer, model, n = index
    k = min(k, n)
    if k == 0 or not queries:
      return [[] for _ in queries]
    # update_vocab=False: query words unseen in the pool score nothing instead of growing it.
    q = tokenizer.tokenize(queries, update_vocab=False, return_as="ids", show_progress=False)
    docs, scores = model.retrieve(q, k=k, show_progress=False)
    return [list(np.asarray(row)) for row in docs]

