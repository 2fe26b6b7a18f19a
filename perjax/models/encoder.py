"""Sentence encoders: a BERT stack + sentence-transformers pooling, behind `load_encoder`.

Semantics follow a sentence-transformers folder: `modules.json` lists the pipeline,
`1_Pooling/config.json` picks mean or CLS pooling, a `Normalize` module means unit-length outputs,
and `sentence_bert_config.json` sets the truncation length.
"""
import dataclasses
import json
from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from perjax.errors import PerjaxError
from perjax.models import zoo
from perjax.models.bert import BertConfig, BertEncoder, bert_from_tensors
from perjax.models.dtypes import parse_dtype
from perjax.models.safetensors_io import read_safetensors

_LENGTH_BUCKET = 32  # pad lengths up to a multiple of this so new lengths rarely recompile


@dataclasses.dataclass(frozen=True)
class Pooling:
  mode: str = "mean"  # "mean" | "cls"
  normalize: bool = True

  def __post_init__(self):
    if self.mode not in ("mean", "cls"):
      raise PerjaxError(f"unsupported pooling mode {self.mode!r}; known: mean, cls")

  @classmethod
  def from_folder(cls, folder: Path) -> "Pooling":
    modules_file = folder / "modules.json"
    if not modules_file.exists():  # a plain HF BERT folder: the common sentence-encoder recipe
      return cls()
    modules = json.loads(modules_file.read_text())
    types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    mode = "mean"
    for m in modules:
      if m["type"].endswith("Pooling"):
        pc = json.loads((folder / m["path"] / "config.json").read_text())
        if pc.get("pooling_mode_cls_token"):
          mode = "cls"
        elif not pc.get("pooling_mode_mean_tokens", True):
          raise PerjaxError(f"{folder}: only mean or CLS pooling is supported, got {pc}")
    return cls(mode=mode, normalize="Normalize" in types)


def pool(hidden, mask, pooling: Pooling):
  """[B, T, H] token states -> [B, H] sentence vectors (float32)."""
  hidden = hidden.astype(jnp.float32)
  if pooling.mode == "cls":
    out = hidden[:, 0]
  else:
    m = mask.astype(jnp.float32)[..., None]
    out = (hidden * m).sum(1) / jnp.maximum(m.sum(1), 1e-9)
  if pooling.normalize:
    out = out / jnp.maximum(jnp.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
  return out


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


class SentenceEncoder:
  """Texts -> [N, D] float32 embeddings with one jitted forward per (batch, length) bucket."""

  def __init__(self, model: BertEncoder, pooling: Pooling, tokenizer: Callable | None = None,
               max_seq_length: int = 256):
    self.model = model
    self.pooling = pooling
    self.tokenizer = tokenizer
    self.max_seq_length = min(max_seq_length, model.config.max_position_embeddings)
    self.pad_id = model.config.pad_token_id
    graphdef, state = nnx.split(model)
    self._state = state

    def forward(state, input_ids, attention_mask):
      hidden = nnx.merge(graphdef, state)(input_ids, attention_mask)
      return pool(hidden, attention_mask, pooling)

    self._forward = jax.jit(forward)

  @property
  def dim(self) -> int:
    return self.model.config.hidden_size

  def embed_ids(self, input_ids, attention_mask) -> np.ndarray:
    """Already padded ids and mask [B, T] -> [B, D] (no bucketing: callers choose the shapes)."""
    out = self._forward(self._state, jnp.asarray(input_ids, jnp.int32),
                        jnp.asarray(attention_mask, jnp.int32))
    return np.asarray(out)

  def encode_ids(self, ids: Sequence[Sequence[int]], batch_size: int = 64) -> np.ndarray:
    """Lists of token ids (special tokens included) -> [N, D], padded into shape buckets."""
    if not ids:
      return np.zeros((0, self.dim), np.float32)
    ids = [list(x)[:self.max_seq_length] for x in ids]
    # Longest first so each batch holds similar lengths and pads little.
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out = np.zeros((len(ids), self.dim), np.float32)
    for start in range(0, len(ids), batch_size):
      chunk = order[start:start + batch_size]
      longest = max(len(ids[chunk[0]]), 1)  # chunk is sorted longest first
      length = min(_round_up(longest, _LENGTH_BUCKET), self.max_seq_length)
      rows = min(batch_size, 1 << (len(chunk) - 1).bit_length())  # power-of-two batch buckets
      input_ids = np.full((rows, length), self.pad_id, np.int32)
      mask = np.zeros((rows, length), np.int32)
      for r, i in enumerate(chunk):
        input_ids[r, :len(ids[i])] = ids[i]
        mask[r, :len(ids[i])] = 1
      out[chunk] = self.embed_ids(input_ids, mask)[:len(chunk)]
    return out

  def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """[N, D] embeddings of `texts` (unit length when the model normalises)."""
    if isinstance(texts, str):
      raise TypeError("encode() takes a list of texts, not a single string")
    if self.tokenizer is None:
      raise PerjaxError("this encoder has no tokenizer; use encode_ids()")
    if not texts:
      return np.zeros((0, self.dim), np.float32)
    # sentence-transformers strips each text before tokenizing; do the same for parity.
    enc = self.tokenizer([str(t).strip() for t in texts], truncation=True,
                         max_length=self.max_seq_length)
    return self.encode_ids(enc["input_ids"], batch_size=batch_size)


def _max_seq_length(folder: Path, cfg: BertConfig) -> int:
  sbert = folder / "sentence_bert_config.json"
  if sbert.exists():
    value = json.loads(sbert.read_text()).get("max_seq_length")
    if value:
      return int(value)
  return cfg.max_position_embeddings


def load_encoder(name_or_path: str | Path, dtype: str = "float32") -> SentenceEncoder:
  """A sentence encoder from a zoo name, a local HF/sentence-transformers folder or a hub id."""
  from transformers import AutoTokenizer  # heavy import, only needed for real models

  folder = zoo.resolve(name_or_path)
  if not (folder / "config.json").exists():
    raise PerjaxError(f"{folder} is not a model folder (no config.json)")
  hf_config = json.loads((folder / "config.json").read_text())
  if hf_config.get("model_type") != "bert":
    raise PerjaxError(f"{name_or_path}: only BERT encoders are supported, "
                      f"got model_type {hf_config.get('model_type')!r}")
  jdtype = parse_dtype(dtype)
  cfg = BertConfig.from_hf(hf_config)
  model = bert_from_tensors(cfg, read_safetensors(folder), dtype=jdtype)
  tokenizer = AutoTokenizer.from_pretrained(str(folder))
  return SentenceEncoder(model, Pooling.from_folder(folder), tokenizer,
                         max_seq_length=_max_seq_length(folder, cfg))


def tiny_bert_encoder(seed: int = 0, *, vocab_size: int = 101, hidden_size: int = 24,
                      num_heads: int = 3, num_layers: int = 2, intermediate_size: int = 37,
                      max_seq_length: int = 61, pooling: Pooling = Pooling(),
                      tokenizer: Callable | None = None, dtype: str = "float32") -> SentenceEncoder:
  """A randomly initialised small encoder with odd sizes, for tests that must not fetch models."""
  cfg = BertConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers,
                   num_heads=num_heads, intermediate_size=intermediate_size,
                   max_position_embeddings=max_seq_length)
  model = BertEncoder(cfg, dtype=parse_dtype(dtype), rngs=nnx.Rngs(seed))
  return SentenceEncoder(model, pooling, tokenizer, max_seq_length=max_seq_length)
