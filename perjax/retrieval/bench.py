"""Retrieval benchmark: BM25 over one pool of generated items, a batch of queries."""
import random
import time

from perjax.data.schema import ProfileItem
from perjax.retrieval.bm25 import BM25Retriever


def bench_bm25(n_items: int = 10_000, n_queries: int = 1_000, k: int = 10, item_words: int = 40,
               query_words: int = 12, seed: int = 0) -> dict:
  """Times indexing one `n_items` pool and answering `n_queries` queries in one batch.

  Texts are drawn from a 5,000-word Zipf-like vocabulary, roughly the length of LaMP profile
  items (a title and a sentence or two)."""
  rng = random.Random(seed)
  vocab = [f"w{i}" for i in range(5000)]
  weights = [1.0 / (i + 1) for i in range(len(vocab))]
  pick = lambda n, length: [" ".join(rng.choices(vocab, weights, k=length)) for _ in range(n)]
  texts, queries = pick(n_items, item_words), pick(n_queries, query_words)
  items = [ProfileItem(str(i), {"text": t}) for i, t in enumerate(texts)]
  engine = BM25Retriever(stopwords=None)
  t0 = time.perf_counter()
  index = engine.index(items, texts)
  t1 = time.perf_counter()
  ranked = engine.search(index, queries, k, [str(i) for i in range(n_queries)])
  t2 = time.perf_counter()
  assert len(ranked) == n_queries and all(len(r) == k for r in ranked)
  return {"retriever": "bm25", "n_items": n_items, "n_queries": n_queries, "k": k,
          "index_s": round(t1 - t0, 4), "query_s": round(t2 - t1, 4),
          "queries_per_s": round(n_queries / (t2 - t1), 1)}


if __name__ == "__main__":
  import json
  print(json.dumps(bench_bm25()))
