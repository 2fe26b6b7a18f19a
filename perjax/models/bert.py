"""BERT encoder in Flax NNX (post-LN, absolute positions), loadable from Hugging Face safetensors.

Only the encoder stack: sentence encoders pool the token states themselves, so there is no pooler.
"""
import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from perjax.errors import PerjaxError

_ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # HF "gelu" is the exact erf form
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}


@dataclasses.dataclass(frozen=True)
class BertConfig:
  vocab_size: int
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  pad_token_id: int = 0

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise PerjaxError(f"hidden_size {self.hidden_size} is not divisible by "
                        f"num_heads {self.num_heads}")
    if self.hidden_act not in _ACTIVATIONS:
      raise PerjaxError(f"unsupported hidden_act {self.hidden_act!r}; "
                        f"known: {', '.join(_ACTIVATIONS)}")

  @classmethod
  def from_hf(cls, hf: dict[str, Any]) -> "BertConfig":
    if hf.get("position_embedding_type", "absolute") != "absolute":
      raise PerjaxError(f"unsupported position_embedding_type {hf['position_embedding_type']!r}")
    return cls(vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
               num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
               intermediate_size=hf["intermediate_size"],
               max_position_embeddings=hf.get("max_position_embeddings", 512),
               type_vocab_size=hf.get("type_vocab_size", 2),
               layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
               hidden_act=hf.get("hidden_act", "gelu"), pad_token_id=hf.get("pad_token_id", 0))

  @classmethod
  def from_folder(cls, folder: str | Path) -> "BertConfig":
    return cls.from_hf(json.loads((Path(folder) / "config.json").read_text()))


class Embeddings(nnx.Module):
  def __init__(self, cfg: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.word = nnx.Embed(cfg.vocab_size, cfg.hidden_size, **kw)
    self.position = nnx.Embed(cfg.max_position_embeddings, cfg.hidden_size, **kw)
    self.token_type = nnx.Embed(cfg.type_vocab_size, cfg.hidden_size, **kw)
    self.norm = nnx.LayerNorm(cfg.hidden_size, epsilon=cfg.layer_norm_eps, **kw)

  def __call__(self, input_ids, token_type_ids):
    positions = jnp.arange(input_ids.shape[1])[None, :]
    x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
    return self.norm(x)


class SelfAttention(nnx.Module):
  def __init__(self, cfg: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    h = cfg.hidden_size
    self.num_heads = cfg.num_heads
    self.query = nnx.Linear(h, h, **kw)
    self.key = nnx.Linear(h, h, **kw)
    self.value = nnx.Linear(h, h, **kw)
    self.out = nnx.Linear(h, h, **kw)

  def __call__(self, x, mask):
    b, t, h = x.shape
    split = lambda y: y.reshape(b, t, self.num_heads, h // self.num_heads)
    q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
    scores = jnp.einsum("bqnd,bknd->bnqk", q, k).astype(jnp.float32)
    scores = scores / np.sqrt(h // self.num_heads)
    # Padding keys get a large negative score; a fully padded row (batch filler) stays finite.
    scores = jnp.where(mask[:, None, None, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    ctx = jnp.einsum("bnqk,bknd->bqnd", probs, v).reshape(b, t, h)
    return self.out(ctx)


class Layer(nnx.Module):
  """One post-LN transformer block: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

  def __init__(self, cfg: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.attention = SelfAttention(cfg, **kw)
    self.attention_norm = nnx.LayerNorm(cfg.hidden_size, epsilon=cfg.layer_norm_eps, **kw)
    self.intermediate = nnx.Linear(cfg.hidden_size, cfg.intermediate_size, **kw)
    self.output = nnx.Linear(cfg.intermediate_size, cfg.hidden_size, **kw)
    self.output_norm = nnx.LayerNorm(cfg.hidden_size, epsilon=cfg.layer_norm_eps, **kw)
    self.act = _ACTIVATIONS[cfg.hidden_act]

  def __call__(self, x, mask):
    x = self.attention_norm(x + self.attention(x, mask))
    return self.output_norm(x + self.output(self.act(self.intermediate(x))))


class BertEncoder(nnx.Module):
  """Token ids [B, T] + attention mask [B, T] -> hidden states [B, T, H]."""

  def __init__(self, cfg: BertConfig, *, dtype=jnp.float32, param_dtype=None,
               rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype or dtype, rngs=rngs)
    self.config = cfg
    self.embeddings = Embeddings(cfg, **kw)
    self.layers = nnx.List([Layer(cfg, **kw) for _ in range(cfg.num_layers)])

  def __call__(self, input_ids, attention_mask, token_type_ids=None):
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    mask = attention_mask.astype(bool)
    x = self.embeddings(input_ids, token_type_ids)
    for layer in self.layers:
      x = layer(x, mask)
    return x


def _hf_names(cfg: BertConfig, model: BertEncoder):
  """Yields (Hugging Face tensor name, nnx Param, transpose?) for every parameter."""
  def linear(prefix, mod):
    yield f"{prefix}.weight", mod.kernel, True  # torch Linear stores [out, in]
    yield f"{prefix}.bias", mod.bias, False
  def norm(prefix, mod):
    yield f"{prefix}.weight", mod.scale, False
    yield f"{prefix}.bias", mod.bias, False
  e = model.embeddings
  yield "embeddings.word_embeddings.weight", e.word.embedding, False
  yield "embeddings.position_embeddings.weight", e.position.embedding, False
  yield "embeddings.token_type_embeddings.weight", e.token_type.embedding, False
  yield from norm("embeddings.LayerNorm", e.norm)
  for i, layer in enumerate(model.layers):
    p = f"encoder.layer.{i}"
    a = layer.attention
    yield from linear(f"{p}.attention.self.query", a.query)
    yield from linear(f"{p}.attention.self.key", a.key)
    yield from linear(f"{p}.attention.self.value", a.value)
    yield from linear(f"{p}.attention.output.dense", a.out)
    yield from norm(f"{p}.attention.output.LayerNorm", layer.attention_norm)
    yield from linear(f"{p}.intermediate.dense", layer.intermediate)
    yield from linear(f"{p}.output.dense", layer.output)
    yield from norm(f"{p}.output.LayerNorm", layer.output_norm)


def bert_to_tensors(model: BertEncoder) -> dict[str, np.ndarray]:
  """The inverse of `bert_from_tensors`: Hugging Face names -> arrays (for export and tests)."""
  return {name: np.asarray(param.get_value().T if transpose else param.get_value())
          for name, param, transpose in _hf_names(model.config, model)}


def bert_from_tensors(cfg: BertConfig, tensors: dict[str, np.ndarray], *,
                      dtype=jnp.float32, param_dtype=None) -> BertEncoder:
  """Builds a BertEncoder holding `tensors` (HF names, with or without a `bert.` prefix)."""
  tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
  # Shapes only: no random init of weights that are overwritten right away.
  model = nnx.eval_shape(lambda: BertEncoder(cfg, dtype=dtype, param_dtype=param_dtype,
                                             rngs=nnx.Rngs(0)))
  missing = []
  for name, param, transpose in _hf_names(cfg, model):
    if name not in tensors:
      missing.append(name)
      continue
    value = tensors[name].T if transpose else tensors[name]
    target = param.get_value()  # a ShapeDtypeStruct: the model is abstract until filled
    if value.shape != target.shape:
      raise PerjaxError(f"tensor {name!r} has shape {value.shape}, expected {target.shape}")
    param.set_value(jnp.asarray(value, dtype=target.dtype))
  if missing:
    raise PerjaxError(f"checkpoint lacks {len(missing)} BERT tensor(s), e.g. {missing[0]!r}")
  return model
