"""A Flax NNX decoder for every supported family: Llama (SmolLM2, Llama 3.x), Qwen2/2.5, Qwen3,
Mistral, Gemma 2, Gemma 3 (text) and Phi-3. A family is a few `LlamaConfig` fields, read from its
`config.json` by `perjax.models.families`; the code below is shared.

Layer weights are stacked on a leading layer axis and applied with `lax.scan`, so a 30-layer
model compiles one layer, not thirty (compile time dominates short CPU runs).

Personal parameters are plugins (`perjax.models.personal`): group-stacked modules acting at named
hook points (prefix, embeddings, each projection's output, the residual stream, the final hidden
state); each example picks its rows by `group_ids`, inside the jitted step.
"""
import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from perjax.errors import ConfigError
from perjax.kernels import cache_attention
from perjax.kernels.rows_matmul import pack, pack_transposed, packed_matmul
from perjax.models.personal import Dims, PersonalStack
from perjax.models.rope import rope_frequencies, apply_rope
from perjax.models.weight_bits import readable, readable_tree

_MASK_VALUE = -1e30

# Attention for calls without a KV cache (training, and scoring rows laid out for it). "default":
# this module's grouped-query attention under an explicit [B, T, S] mask, right for any padding.
# "xla" and "cudnn": `jax.nn.dot_product_attention` with a causal mask and each row's length,
# which needs right-padded rows, as `training.batching.make_batch` builds them. "cudnn" is
# cuDNN's fused flash attention (NVIDIA GPUs, bfloat16 or float16); "xla" is the same call
# lowered by XLA on any backend, the testable stand-in for it. Decoding always uses "default".
ATTENTION_KERNELS = ("default", "xla", "cudnn")


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  rope_theta: float = 10000.0
  rope_scaling: tuple | None = None  # llama3 or linear scaling, sorted (key, value) pairs
  rms_norm_eps: float = 1e-5
  tie_embeddings: bool = True
  attention_bias: bool = False
  max_position: int = 2048
  bos_token_id: int | None = None
  eos_token_ids: tuple[int, ...] = ()
  pad_token_id: int = 0
  # How a family differs from Llama (`perjax.models.families`); the defaults are Llama's.
  family: str = "llama"               # the Hugging Face model_type
  norm_offset: float = 0.0            # norms scale by (offset + w): Gemma stores w - 1
  qk_norm: bool = False               # RMSNorm over each head's q and k before rope
  sandwich_norms: bool = False        # norms on the attention's and the MLP's outputs too
  activation: str = "silu"            # the gated MLP's: "silu" or "gelu_tanh"
  embed_scale: bool = False           # token embeddings times sqrt(hidden_size)
  query_scale: float | None = None    # attention score scale; None: head_dim ** -0.5
  attn_softcap: float | None = None   # scores -> cap * tanh(scores / cap)
  final_softcap: float | None = None  # logits -> cap * tanh(logits / cap)
  sliding_window: int | None = None   # a sliding layer's query sees this many latest slots
  sliding_layers: tuple[bool, ...] = ()  # per layer: within the window; () none
  local_rope_theta: float | None = None  # the sliding layers' own rope base, unscaled

  @classmethod
  def from_hf(cls, cfg: dict) -> "LlamaConfig":
    """From a Hugging Face `config.json` dict of any supported family."""
    from perjax.models.families import config_kwargs
    return cls(**config_kwargs(cfg))

  def layer_is_sliding(self, i: int) -> bool:
    return bool(self.sliding_layers) and self.sliding_layers[i]


def rms_norm(x, weight, eps, offset=0.0):
  """Root-mean-square normalisation of the last axis, in float32, scaled by `offset + weight`
  (Gemma stores its weights less 1: offset 1)."""
  x32 = x.astype(jnp.float32)
  x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  return (x32 * (offset + weight.astype(jnp.float32))).astype(x.dtype)


class LayerStack(nnx.Module):
  """All decoder layers' weights, stacked on a leading layer axis."""

  def __init__(self, c: LlamaConfig, *, param_dtype, rngs: nnx.Rngs):
    L, d, f = c.num_layers, c.hidden_size, c.intermediate_size
    q_dim, kv_dim = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
    normal = lambda shape, fan_in: nnx.Param(
        jax.random.normal(rngs.params(), shape, param_dtype) / math.sqrt(fan_in))
    # norms start as the identity: (offset + w) = 1
    norm = lambda size: nnx.Param(jnp.full((L, size), 1.0 - c.norm_offset, param_dtype))
    self.attn_norm = norm(d)
    self.q = normal((L, d, q_dim), d)
    self.k = normal((L, d, kv_dim), d)
    self.v = normal((L, d, kv_dim), d)
    self.o = normal((L, q_dim, d), q_dim)
    if c.attention_bias:
      self.q_bias = nnx.Param(jnp.zeros((L, q_dim), param_dtype))
      self.k_bias = nnx.Param(jnp.zeros((L, kv_dim), param_dtype))
      self.v_bias = nnx.Param(jnp.zeros((L, kv_dim), param_dtype))
    if c.qk_norm:
      self.q_norm, self.k_norm = norm(c.head_dim), norm(c.head_dim)
    if c.sandwich_norms:
      self.post_attn_norm, self.post_mlp_norm = norm(d), norm(d)
    self.mlp_norm = norm(d)
    self.gate = normal((L, d, f), d)
    self.up = normal((L, d, f), d)
    self.down = normal((L, f, d), f)

  def arrays(self) -> dict:
    """{field: stacked array}, the layer scan's input."""
    return {name: v[...] for name, v in vars(self).items() if isinstance(v, nnx.Variable)}


# The linear projections (hook points "proj.<name>"), with their (input, output) feature sizes.
def projection_shapes(c: LlamaConfig) -> dict[str, tuple[int, int]]:
  q_dim, kv_dim = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
  d, f = c.hidden_size, c.intermediate_size
  return {"q": (d, q_dim), "k": (d, kv_dim), "v": (d, kv_dim), "o": (q_dim, d),
          "gate": (d, f), "up": (d, f), "down": (f, d)}


def parameter_count(c: LlamaConfig) -> int:
  """The base model's parameters (embeddings, layers, final norm, LM head unless tied)."""
  matrices = sum(i * o for i, o in projection_shapes(c).values())
  vectors = c.hidden_size * (4 if c.sandwich_norms else 2) + 2 * c.head_dim * c.qk_norm
  if c.attention_bias:
    vectors += (c.num_heads + 2 * c.num_kv_heads) * c.head_dim
  heads = 1 if c.tie_embeddings else 2
  return c.num_layers * (matrices + vectors) + heads * c.vocab_size * c.hidden_size \
      + c.hidden_size


def dims(c: LlamaConfig) -> Dims:
  """The geometry personal modules are shaped by."""
  return Dims(num_layers=c.num_layers, hidden_size=c.hidden_size,
              projections=projection_shapes(c))


class Llama(nnx.Module):
  """Decoder-only transformer. `model(input_ids)` -> logits `[B, T, V]`."""

  def __init__(self, config: LlamaConfig, *, personal=None,
               dtype=jnp.float32, param_dtype=jnp.float32, unroll_layers: bool = False,
               rngs: nnx.Rngs | None = None):
    rngs = rngs or nnx.Rngs(0)
    self.config = config
    self.dtype = dtype
    self.unroll_layers = unroll_layers
    # Training memory options, set on a built model (see `training.memory`): recompute each
    # layer's activations in the backward pass instead of keeping them, and compute the LM loss
    # from the final hidden states in chunks of this many rows (0: whole logits at once).
    self.remat_layers = False
    self.loss_chunk = 0
    self.attention = "default"  # one of ATTENTION_KERNELS
    c = config
    self.embed = nnx.Param(
        jax.random.normal(rngs.params(), (c.vocab_size, c.hidden_size), param_dtype) * 0.02)
    self.layers = LayerStack(c, param_dtype=param_dtype, rngs=rngs)
    self.final_norm = nnx.Param(jnp.full((c.hidden_size,), 1.0 - c.norm_offset, param_dtype))
    self.lm_head = None if c.tie_embeddings else nnx.Param(
        jax.random.normal(rngs.params(), (c.hidden_size, c.vocab_size), param_dtype) * 0.02)
    # `personal`: a builder (dims, rngs) -> PersonalStack, e.g. `personal.single(factory, G)`
    self.personal: PersonalStack | None = None if personal is None else personal(dims(c), rngs)

  # -- public API ---------------------------------------------------------------------------
  def __call__(self, input_ids, *, group_ids=None, attention_mask=None, level_ids=None,
               base_only: bool = False):
    """Logits `[B, T, V]` for right- or left-padded `input_ids` (mask 1 = real token).
    `base_only`: the base model, every personal module switched off."""
    input_ids = jnp.asarray(input_ids)
    B, T = input_ids.shape
    if attention_mask is None:
      attention_mask = jnp.ones((B, T), jnp.int32)
    logits, _ = self.forward(input_ids, attention_mask=attention_mask, group_ids=group_ids,
                             level_ids=level_ids, base_only=base_only)
    return logits

  @property
  def prefix_len(self) -> int:
    return self.personal.prefix_len if self.personal is not None else 0

  def init_cache(self, batch: int, length: int, dtype=None, stacked: bool = False) -> dict:
    """An empty KV cache for `length` slots (personal prefixes included): one `[B, KV, S,
    D]` array per layer (for the unrolled layer loop), or with `stacked` one `[L, B, KV, S,
    D]` array (for the layer scan, which decodes from the stacked weights with no per-layer
    copy of them), in the compute dtype unless `dtype` is given. (A float32 cache under
    bfloat16 compute made XLA's CPU backend copy it at every decoding step.)"""
    c = self.config
    shape = (batch, c.num_kv_heads, length, c.head_dim)
    dtype = dtype or self.dtype
    if stacked:
      k, v = (jnp.zeros((c.num_layers, *shape), dtype) for _ in "kv")
    else:
      k, v = (tuple(jnp.zeros(shape, dtype) for _ in range(c.num_layers)) for _ in "kv")
    return {"k": k, "v": v, "valid": jnp.zeros((batch, length), jnp.bool_)}

  def gather_personal(self, group_ids, per_layer: bool = False, level_ids=None):
    """Each row's personal parameters in the compute dtype (see `PersonalStack.gather`): per
    layer for the unrolled layer loop, stacked on the layer axis for the layer scan."""
    if self.personal is None:
      return {"unlayered": {}, "layers": [{} for _ in range(self.config.num_layers)]
              if per_layer else {}}
    return self.personal.gather(jnp.asarray(group_ids), self.dtype, level_ids=level_ids,
                                per_layer=per_layer, num_layers=self.config.num_layers)

  def _acting(self, hook: str):
    return [] if self.personal is None else self.personal.acting(hook)

  def unstacked_layers(self, fuse: bool = True, pack_weights: bool = False) -> list[dict]:
    """Each layer's weights as separate arrays, for `forward(layers=...)`. Slicing the stacked
    weights inside a jitted program copies them (and, in bfloat16 on CPU, widens them to
    float32 first), which dominated decoding; slicing once outside jit avoids it.
    `pack_weights`: the projections in the compute dtype, packed for `packed_matmul` (the CPU
    decoding kernel; see `perjax.kernels.rows_matmul`), instead of `[in, out]`."""
    stacked = self.layers.arrays()
    projections = {*projection_shapes(self.config), *(_FUSED_PROJECTIONS if fuse else ())}
    layers = []
    for i in range(self.config.num_layers):
      p = {name: readable(w[i]) for name, w in stacked.items()}
      # `fuse`: projections reading the same input become one wider matmul (fewer, larger
      # products decode faster on CPU); personal hooks act on each part after the split.
      # Inside a jitted step the concatenation would be a copy per call, so it is skipped there.
      for fused, parts in (_FUSED_PROJECTIONS.items() if fuse else ()):
        p[fused] = jnp.concatenate([p.pop(name) for name in parts], axis=1)
        if all(name + "_bias" in p for name in parts):
          p[fused + "_bias"] = jnp.concatenate([p.pop(name + "_bias") for name in parts])
      if pack_weights:
        p = {name: pack(w.astype(self.dtype)) if name in projections else w
             for name, w in p.items()}
      layers.append(p)
    return layers

  def packed_head(self):
    """The LM head in the compute dtype, packed for `packed_matmul` (`forward(packed_head=...)`)."""
    weight = self.head_weight().astype(self.dtype)
    return pack_transposed(weight) if self.lm_head is None else pack(weight)

  def forward(self, input_ids, *, attention_mask, group_ids=None, cache=None, cache_index=0,
              positions=None, last_logits_only: bool = False, layers: list | None = None,
              rows=None, level_ids=None, base_only: bool = False, hidden_only: bool = False,
              packed_head=None):
    """The full forward pass.

    Without a cache: personal prefixes (if any) are prepended and logits for the real tokens
    are returned. With a cache: tokens are written at `cache_index` (the prefix is written when
    `cache_index == 0`), attending to every valid earlier slot. Returns (logits, cache).

    `layers` (from `unstacked_layers()`) runs the layers as an unrolled loop over separate
    weight arrays: the fast path for inference. Without it, layers run as one `lax.scan` over
    the stacked weights (one layer to compile and differentiate), unless the model was built
    with `unroll_layers=True` (slower to compile, faster to run on CPU); a cache from
    `init_cache()` takes the unrolled loop, a stacked one the scan. `rows`: the examples' personal parameters from `gather_personal` (per
    layer for the unrolled loop), when the caller gathered them once for many calls (a
    decoding loop); gathered here otherwise. `base_only` switches every personal module off.
    `hidden_only` returns the final hidden states `[B, T, d]` (after the final norm) instead of
    the logits, for a loss that applies the LM head in chunks (`head_logits`).
    `packed_head`: the LM head from `packed_head()`, with `layers` from
    `unstacked_layers(pack_weights=True)`.
    """
    c = self.config
    B, T = input_ids.shape
    group_ids = jnp.zeros((B,), jnp.int32) if group_ids is None else jnp.asarray(group_ids)
    mask = jnp.asarray(attention_mask).astype(jnp.bool_)
    x = readable(jnp.take(self.embed[...], input_ids, axis=0)).astype(self.dtype)
    if c.embed_scale:  # in the compute dtype, as the reference scales them
      x = x * jnp.asarray(math.sqrt(c.hidden_size), self.dtype)
    acting = (lambda hook: []) if base_only else self._acting
    prefix_len = 0 if base_only else self.prefix_len
    # a stacked cache (`init_cache(stacked=True)`) decodes in the layer scan
    stacked_cache = cache is not None and not isinstance(cache["k"], (tuple, list))
    unrolled = not stacked_cache and (
        layers is not None or self.unroll_layers or cache is not None)
    if rows is None:
      rows = ({"unlayered": {}, "layers": [{}] * c.num_layers if unrolled else {}} if base_only
              else self.gather_personal(group_ids, per_layer=unrolled, level_ids=level_ids))
    for name, m in acting("embed"):
      x = m.embed(x, rows["unlayered"][name])
    writes_prefix = bool(prefix_len) and (
        cache is None or isinstance(cache_index, int) and cache_index == 0)
    if positions is None:
      positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
      if cache is not None:  # continue after the valid slots (prefix included) already cached
        earlier = jnp.arange(cache["valid"].shape[1]) < cache_index
        positions = positions + jnp.sum(cache["valid"] & earlier, axis=1, keepdims=True)
      if writes_prefix:
        positions = positions + prefix_len
    n_prefix = 0
    if writes_prefix:
      n_prefix = prefix_len
      prefix = [m.prefix(rows["unlayered"][name]) for name, m in acting("prefix")]  # [B, n, d]
      x = jnp.concatenate([*prefix, x], axis=1)
      mask = jnp.concatenate([jnp.ones((B, n_prefix), jnp.bool_), mask], axis=1)
      positions = jnp.concatenate(
          [jnp.broadcast_to(jnp.arange(n_prefix), (B, n_prefix)), positions], axis=1)

    # A fresh prefill (cache_index 0) attends only among its own tokens, so it never reads
    # the (empty) cache; later calls attend over every valid cached slot.
    fresh = cache is None or (isinstance(cache_index, int) and cache_index == 0)
    if fresh:
      kv_valid = mask
      q_slots = kv_slots = jnp.arange(x.shape[1])
    else:
      kv_valid = jax.lax.dynamic_update_slice(cache["valid"], mask, (0, cache_index))
      q_slots = cache_index + jnp.arange(x.shape[1])
      kv_slots = jnp.arange(kv_valid.shape[1])
    # [B, Tq, S]: causal over slots, and never attend to padding.
    attn_mask = (kv_slots[None, None, :] <= q_slots[None, :, None]) & kv_valid[:, None, :]
    # The library kernels see each right-padded row's length instead of the mask. An empty
    # (filler) row counts one token: a wholly masked row may come out NaN from a fused kernel,
    # and NaN stays NaN under the loss's zero weight.
    lengths = None if cache is not None or self.attention == "default" else \
        jnp.maximum(jnp.sum(mask, axis=1, dtype=jnp.int32), 1)
    if lengths is not None and (c.sliding_layers or c.attn_softcap):
      raise ConfigError(f"attention {self.attention!r} has no sliding-window or soft-capped "
                        f"layers ({c.family}); use attention 'default'")
    # Every position is below the number of slots this call can see (its own, or the cache's).
    n_slots = kv_valid.shape[1]
    full = (attn_mask, *rope_frequencies(positions, c.head_dim, c.rope_theta, c.rope_scaling,
                                         length=n_slots))
    local = full
    if c.sliding_layers:  # a query sees the `sliding_window` latest tokens, itself included
      # counted in tokens, not slots, so left padding and the cache's layout cannot move the
      # window: a slot's token index is the number of valid slots up to it
      token_index = jnp.cumsum(kv_valid, axis=1) - 1  # [B, S]
      window = (token_index[:, q_slots, None] - token_index[:, None, :]) < c.sliding_window
      rope = full[1:] if c.local_rope_theta is None else rope_frequencies(
          positions, c.head_dim, c.local_rope_theta, None, length=n_slots)
      local = (attn_mask & window, *rope)
    # each module's rows at one layer: its layer-independent rows plus the layer's slices
    layer_rows = lambda per: {n: {**g, **per.get(n, {})} for n, g in rows["unlayered"].items()}
    run_layer = lambda h, p, rows_l, kv, attend: self._layer(
        h, readable_tree(p), rows_l, kv, fresh, attend, cache_index, acting, lengths)
    if self.remat_layers and cache is None:
      # keep only each layer's input for the backward pass; inside the scan CSE cannot merge
      # the recomputation into the forward pass, so it need not be prevented
      run_layer = jax.checkpoint(run_layer, prevent_cse=unrolled)

    if not unrolled:
      # layers of both kinds: each picks its mask and rope inside the scan
      mixed = len(set(c.sliding_layers)) > 1
      kinds = jnp.asarray(c.sliding_layers) if mixed else jnp.zeros(c.num_layers, jnp.bool_)
      pick = lambda sliding: tuple(jnp.where(sliding, a, b) for a, b in zip(local, full)) \
          if mixed else (local if c.sliding_layers else full)

      def scanned_layer(h, xs):
        p, per, sliding, kv = xs
        h, kv = run_layer(h, p, layer_rows(per), kv, pick(sliding))
        return h, None if cache is None else kv  # training stacks no keys and values

      kv_stack = None if cache is None else (cache["k"], cache["v"])
      x, new_kv = jax.lax.scan(scanned_layer, x,
                               (self.layers.arrays(), rows["layers"], kinds, kv_stack))
    else:
      layers = layers if layers is not None else self.unstacked_layers(fuse=False)
      new_k, new_v = [], []
      for i, (p, per) in enumerate(zip(layers, rows["layers"])):
        kv = None if cache is None else (cache["k"][i], cache["v"][i])
        attend = local if c.layer_is_sliding(i) else full
        x, (k, v) = run_layer(x, p, layer_rows(per), kv, attend)
        new_k.append(k)
        new_v.append(v)
      new_kv = (tuple(new_k), tuple(new_v))
    new_cache = None if cache is None else {
        "k": new_kv[0], "v": new_kv[1], "valid": kv_valid if not fresh else
        jax.lax.dynamic_update_slice(cache["valid"], mask, (0, cache_index))}
    x = rms_norm(x, readable(self.final_norm[...]), c.rms_norm_eps, c.norm_offset)
    for name, m in acting("final"):
      x = m.final(x, rows["unlayered"][name])
    x = x[:, -1:] if last_logits_only else x[:, n_prefix:]  # prefill needs only the last
    if hidden_only:
      return x, new_cache
    rows_2d = x.reshape(-1, x.shape[-1])
    logits = (self.head_logits(rows_2d, self.head_weight()) if packed_head is None
              else self.capped(packed_matmul(rows_2d, packed_head, c.vocab_size)))
    return logits.reshape(x.shape[:-1] + (-1,)), new_cache

  def head_weight(self):
    """The LM head's weight: `[d, V]`, or the tied embedding `[V, d]`."""
    return readable(self.embed[...] if self.lm_head is None else self.lm_head[...])

  def head_logits(self, rows_2d, weight):
    """float32 logits `[N, V]` of final hidden states `[N, d]`, `weight` from `head_weight`
    (passed in, so a chunked loss can differentiate through it)."""
    # tied: the embedding [V, d] is read in place, never transposed
    contract_w = 1 if self.lm_head is None else 0
    return self.capped(_matmul_f32(rows_2d, weight.astype(self.dtype), contract_w=contract_w))

  def capped(self, logits):
    """Logits after the family's final soft-capping (Gemma 2), if any."""
    cap = self.config.final_softcap
    return logits if cap is None else cap * jnp.tanh(logits / cap)

  # -- one layer ----------------------------------------------------------------------------
  def _proj(self, x, p, name, rows_l, acting):
    # A 2-D matmul: XLA's CPU backend runs [B*T, d] x [d, o] faster than a 3-D dot.
    x_2d = x.reshape(-1, x.shape[-1])
    w = p[name]
    if w.ndim == 4:  # packed for decoding (`unstacked_layers(pack_weights=True)`)
      width = sum(projection_shapes(self.config)[part][1]
                  for part in _FUSED_PROJECTIONS.get(name, (name,)))
      y = packed_matmul(x_2d, w, width).astype(self.dtype)
    else:
      y = _matmul(x_2d, w.astype(self.dtype))
    y = y.reshape(x.shape[:-1] + (y.shape[-1],))
    if name + "_bias" in p:
      y = y + p[name + "_bias"].astype(self.dtype)
    return _personalize(y, x, name, rows_l, acting)

  def _projs(self, x, p, names, rows_l, acting):
    """Several projections of the same input, as one fused matmul where the weights are fused."""
    fused = next((f for f, parts in _FUSED_PROJECTIONS.items() if parts == names), None)
    if fused not in p:
      return [self._proj(x, p, name, rows_l, acting) for name in names]
    y = self._proj(x, p, fused, rows_l, acting)  # no hook point is named after a fused weight
    sizes = [projection_shapes(self.config)[name][1] for name in names]
    outs = jnp.split(y, np.cumsum(sizes)[:-1], axis=-1)
    return [_personalize(o, x, name, rows_l, acting) for o, name in zip(outs, names)]

  def _layer(self, h, p, rows_l, kv, fresh, attend, cache_index, acting, lengths=None):
    """One decoder layer. `kv`: this layer's cache (k, v) `[B, KV, S, D]` or None. `attend`:
    (mask `[B, T, S]`, cos, sin) of this layer's kind (full or sliding). `lengths`: the rows'
    lengths `[B]` when a library kernel attends (`self.attention`). Returns the new hidden
    state and (k, v): the updated cache, or this call's keys and values."""
    c = self.config
    B, T, _ = h.shape
    attn_mask, cos, sin = attend
    x = rms_norm(h, p["attn_norm"], c.rms_norm_eps, c.norm_offset)
    q, k, v = self._projs(x, p, ("q", "k", "v"), rows_l, acting)
    q = q.reshape(B, T, c.num_heads, c.head_dim)
    k = k.reshape(B, T, c.num_kv_heads, c.head_dim)
    v = v.reshape(B, T, c.num_kv_heads, c.head_dim)
    if c.qk_norm:
      q = rms_norm(q, p["q_norm"], c.rms_norm_eps, c.norm_offset)
      k = rms_norm(k, p["k_norm"], c.rms_norm_eps, c.norm_offset)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    scale = c.query_scale  # None: head_dim ** -0.5
    if lengths is not None:  # no cache: the library kernel takes [B, T, heads, D] as they are
      attn = _library_attention(q, k, v, lengths, self.attention, scale)
      return self._layer_rest(h, attn, p, rows_l, acting), (k, v)
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, KV, T, D]
    if kv is not None:
      write = lambda cached, new: jax.lax.dynamic_update_slice(
          cached, new.astype(cached.dtype), (0, 0, cache_index, 0))
      cached_k, cached_v = write(kv[0], k), write(kv[1], v)
      if not fresh:  # attend over the whole cache, this call's tokens included
        k, v = cached_k.astype(k.dtype), cached_v.astype(v.dtype)
      out_kv = (cached_k, cached_v)
    else:
      out_kv = (k, v)
    plain = c.query_scale is None and c.attn_softcap is None  # what the CPU kernel computes
    if kv is not None and plain and cache_attention.applies(q, k):  # inference: the CPU kernel
      attn = cache_attention.cache_attention(q, k, v, attn_mask)
    else:
      attn = gqa_attention(q, k, v, attn_mask, c.num_kv_heads, scale, c.attn_softcap)
    return self._layer_rest(h, attn, p, rows_l, acting), out_kv

  def _layer_rest(self, h, attn, p, rows_l, acting):
    """The layer after attention `[B, T, H, D]`: output projection, MLP, residual hooks."""
    c = self.config
    B, T, _ = h.shape
    post_norm = lambda y, name: rms_norm(y, p[name], c.rms_norm_eps, c.norm_offset) \
        if c.sandwich_norms else y
    h = h + post_norm(self._proj(attn.reshape(B, T, -1), p, "o", rows_l, acting),
                      "post_attn_norm")
    x = rms_norm(h, p["mlp_norm"], c.rms_norm_eps, c.norm_offset)
    gate, up = self._projs(x, p, ("gate", "up"), rows_l, acting)
    # in float32, rounded once: as fast as one bfloat16 op, and two bfloat16 roundings took
    # twice as long on CPU (the prefill's 30 layers: 0.12 s against 0.06 s)
    act = (_ACTIVATIONS[c.activation](gate.astype(jnp.float32))
           * up.astype(jnp.float32)).astype(gate.dtype)
    h = h + post_norm(self._proj(act, p, "down", rows_l, acting), "post_mlp_norm")
    for name, m in acting("residual"):
      h = m.residual(h, rows_l[name])
    return h


def _personalize(y, x, name, rows_l, acting):
  """A projection's output `y` (of input `x`) through every personal module hooked there."""
  for module_name, m in acting("proj." + name):
    y = m.project(name, y, x, rows_l[module_name])
  return y


_FUSED_PROJECTIONS = {"qkv": ("q", "k", "v"), "gate_up": ("gate", "up")}

# the gated MLP's activation (`LlamaConfig.activation`); Gemma's is GELU's tanh approximation
_ACTIVATIONS = {"silu": jax.nn.silu, "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True)}


def _matmul(x, w):
  """x @ w in x's dtype. Accumulates in float32 and rounds once: XLA's CPU dot runs bfloat16
  inputs with a float32 result over twice as fast as with a bfloat16 result."""
  return _matmul_f32(x, w).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul_f32(x, w, contract_w=0):
  """x [M, K] times w with a float32 result: w is [K, N] (contract_w=0) or [N, K] (1)."""
  return jax.lax.dot_general(x, w, (((1,), (contract_w,)), ((), ())),
                             preferred_element_type=jnp.float32)


def _matmul_fwd(x, w, contract_w):
  return _matmul_f32(x, w, contract_w), (x, w)


def _matmul_bwd(contract_w, residuals, grad):
  # The backward products in the compute dtype too: the automatic transpose would multiply the
  # float32 cotangent with the weights widened to float32, at half the speed. They contract
  # over the weight's axes in place: an explicit w.T would be a copy (and XLA's CPU backend
  # transposes bfloat16 through float32).
  x, w = residuals
  grad = grad.astype(x.dtype)
  out_axis = 1 - contract_w
  dx = jax.lax.dot_general(grad, w, (((1,), (out_axis,)), ((), ())),
                           preferred_element_type=jnp.float32).astype(x.dtype)
  if contract_w == 0:
    dw = jax.lax.dot_general(x, grad, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  else:
    dw = jax.lax.dot_general(grad, x, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  return dx, dw.astype(w.dtype)


_matmul_f32.defvjp(_matmul_fwd, _matmul_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _einsum_f32(spec, a, b):
  """A two-operand einsum with a float32 result, for specs where each index appears in exactly
  two of the three terms or in all three (batched matmuls). Like `_matmul_f32`, its backward
  products take the inputs' dtype and accumulate in float32: autodiff would multiply the
  float32 cotangent with the operands widened to float32 (slow batched dots on CPU)."""
  return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


def _einsum_fwd(spec, a, b):
  return _einsum_f32(spec, a, b), (a, b)


def _einsum_bwd(spec, residuals, grad):
  a, b = residuals
  inputs, out = spec.split("->")
  a_spec, b_spec = inputs.split(",")
  grad = grad.astype(a.dtype)
  da = jnp.einsum(f"{out},{b_spec}->{a_spec}", grad, b, preferred_element_type=jnp.float32)
  db = jnp.einsum(f"{a_spec},{out}->{b_spec}", a, grad, preferred_element_type=jnp.float32)
  return da.astype(a.dtype), db.astype(b.dtype)


_einsum_f32.defvjp(_einsum_fwd, _einsum_bwd)


def gqa_attention(q, k, v, mask, num_kv_heads, scale=None, softcap=None):
  """Grouped-query attention: q [B,T,H,D], k/v [B,KV,S,D], mask [B,T,S] -> [B,T,H,D]. Scores
  are scaled by `scale` (default D ** -0.5) and soft-capped at `softcap` if given."""
  B, T, H, D = q.shape
  K, S = num_kv_heads, k.shape[2]
  G = H // K
  # Heads sharing a KV head are stacked along the query axis: one [G*T, D] x [D, S] matmul
  # per (batch, kv head), which XLA runs about twice as fast as a 5-D einsum.
  q = q.reshape(B, T, K, G, D).transpose(0, 2, 3, 1, 4).reshape(B, K, G * T, D)
  scores = _einsum_f32("bkqd,bksd->bkqs", q, k)
  scores = scores / math.sqrt(D) if scale is None else scores * scale
  if softcap is not None:
    scores = softcap * jnp.tanh(scores / softcap)
  mask = jnp.broadcast_to(mask[:, None, None], (B, 1, G, T, S)).reshape(B, 1, G * T, S)
  scores = jnp.where(mask, scores, _MASK_VALUE)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  out = _einsum_f32("bkqs,bksd->bkqd", probs, v)
  out = out.astype(v.dtype)
  return out.reshape(B, K, G, T, D).transpose(0, 3, 1, 2, 4).reshape(B, T, H, D)


def _library_attention(q, k, v, lengths, kernel: str, scale=None):
  """Causal attention of right-padded rows through `jax.nn.dot_product_attention`: q `[B, T,
  H, D]`, k/v `[B, T, KV, D]`, `lengths` `[B]` -> `[B, T, H, D]`. Queries past a row's length
  are padding; their outputs are never read (no loss counts them)."""
  return jax.nn.dot_product_attention(q, k, v, scale=scale, is_causal=True,
                                      query_seq_lengths=lengths, key_value_seq_lengths=lengths,
                                      implementation=kernel)


def tiny_llama_config(**overrides: Any) -> LlamaConfig:
  """A tiny configuration with odd, prime sizes for fast tests."""
  base = dict(vocab_size=131, hidden_size=42, intermediate_size=46, num_layers=3, num_heads=6,
              num_kv_heads=2, head_dim=14, rope_theta=10000.0, max_position=256,
              bos_token_id=1, eos_token_ids=(2,), pad_token_id=0, tie_embeddings=False)
  base.update(overrides)
  return LlamaConfig(**base)
