"""Dense retrieval: cosine similarity of encoder embeddings (e.g. all-MiniLM-L6-v2).

Any object with `.encode(list_of_texts) -> [N, D]` works. Pool embeddings are cached by the pool's
texts, so re-running retrieval over the same pools (another k, another split) encodes nothing new.
"""
import hashlib

import numpy as np

from perjax.errors import ConfigError
from perjax.retrieval.base import RETRIEVERS


def _normalise(x) -> np.ndarray:
  x = np.asarray(x, dtype=np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@RETRIEVERS.register("dense")
class DenseRetriever:
  def __init__(self, encoder=None, batch_size: int = 256):
    if encoder is None or not hasattr(encoder, "encode"):
      raise ConfigError("the dense retriever needs encoder= (an object with .encode(texts)); "
                        "e.g. perjax.models.load_encoder(name)")
    self.encoder, self.batch_size = encoder, batch_size
    self._cache: dict[str, np.ndarray] = {}

  def _encode(self, texts) -> np.ndarray:
    if not texts:
      return np.zeros((0, 1), np.float32)
    parts = [_normalise(self.encoder.encode(texts[i:i + self.batch_size]))
             for i in range(0, len(texts), self.batch_size)]
    return np.concatenate(parts)

  def index(self, items, texts):
    key = hashlib.sha1("\x1e".join(texts).encode("utf-8")).hexdigest()
    if key not in self._cache:
      self._cache[key] = self._encode(list(texts))
    return self._cache[key]

  def search(self, index, queries, k, keys):
    k = min(k, len(index))
    if k == 0 or not queries:
      return [[] for _ in queries]
    scores = self._encode(list(queries)) @ index.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1, kind="stable")[:, ::-1]
    return [list(row) for row in np.take_along_axis(top, order, axis=1)]

