"""The decoder families perjax builds, as the few ways each differs from Llama.

One decoder (`perjax.models.llama`) computes every family; a family is a handful of
`LlamaConfig` fields (norm offset, q/k norms, sandwich norms, MLP activation, embedding scale,
attention scale and soft-capping, sliding-window layers, per-layer rope bases) plus its
checkpoint layout (`perjax.models.hf_layout`). This module reads those fields from a Hugging Face
`config.json` dict. Facts of each family follow transformers' configuration classes (defaults
a `config.json` may leave out: Gemma's tied embeddings and alternating windows, Gemma 3's window
pattern of 6 and local rope base of 10000).
"""
from perjax.errors import PerjaxError

SUPPORTED = ("llama", "qwen2", "mistral", "qwen3", "gemma2", "gemma3_text", "phi3")

_GEMMA = ("gemma2", "gemma3_text")
_ACTIVATIONS = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_tanh": "gelu_tanh"}
_SLIDING, _FULL = "sliding_attention", "full_attention"


def check_supported(model_type, where: str) -> None:
  if model_type not in SUPPORTED:
    raise PerjaxError(f"{where}: model_type {model_type!r} is not a supported decoder family; "
                      f"supported: {', '.join(SUPPORTED)}")


def config_kwargs(cfg: dict) -> dict:
  """`LlamaConfig` keyword arguments from a Hugging Face `config.json` dict."""
  family = cfg.get("model_type", "llama")
  check_supported(family, "config.json")
  gemma = family in _GEMMA
  heads = cfg["num_attention_heads"]
  head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
  eos = cfg.get("eos_token_id")
  eos = tuple(eos) if isinstance(eos, list) else ((eos,) if eos is not None else ())
  global_rope, local_rope = _rope(cfg)
  layers = cfg["num_hidden_layers"]
  sliding = _sliding_layers(cfg, family, layers)
  activation = cfg.get("hidden_activation") or cfg.get("hidden_act") or "silu"
  if activation not in _ACTIVATIONS:
    raise PerjaxError(f"config.json: hidden activation {activation!r} is not supported "
                      f"({', '.join(_ACTIVATIONS)})")
  scalar = cfg.get("query_pre_attn_scalar")
  return dict(
      vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
      intermediate_size=cfg["intermediate_size"], num_layers=layers,
      num_heads=heads, num_kv_heads=cfg.get("num_key_value_heads") or heads, head_dim=head_dim,
      rope_theta=global_rope[0], rope_scaling=global_rope[1],
      rms_norm_eps=cfg.get("rms_norm_eps", 1e-5),
      tie_embeddings=cfg.get("tie_word_embeddings", gemma),
      attention_bias=cfg.get("attention_bias", family == "qwen2"),
      max_position=cfg.get("max_position_embeddings", 2048),
      bos_token_id=cfg.get("bos_token_id"), eos_token_ids=eos,
      pad_token_id=cfg.get("pad_token_id") if cfg.get("pad_token_id") is not None else
      (eos[0] if eos else 0),
      family=family,
      norm_offset=1.0 if gemma else 0.0,
      qk_norm=family in ("qwen3", "gemma3_text"),
      sandwich_norms=gemma,
      activation=_ACTIVATIONS[activation],
      embed_scale=gemma,
      query_scale=float(scalar) ** -0.5 if scalar and gemma else None,
      attn_softcap=cfg.get("attn_logit_softcapping") if family == "gemma2" else None,
      final_softcap=cfg.get("final_logit_softcapping") if family == "gemma2" else None,
      sliding_window=cfg.get("sliding_window") if any(sliding) else None,
      sliding_layers=tuple(sliding) if any(sliding) else (),
      local_rope_theta=local_rope[0] if local_rope else None)


def _rope(cfg: dict):
  """((theta, scaling), local (theta, scaling) or None). transformers 5 writes
  `rope_parameters` (per layer type for Gemma 3); earlier versions `rope_theta`/`rope_scaling`
  and Gemma 3's `rope_local_base_freq`."""
  params = cfg.get("rope_parameters") or {}
  if _FULL in params or _SLIDING in params:
    full, local = params.get(_FULL, {}), params.get(_SLIDING)
  else:
    full, local = params, None
  scaling = cfg.get("rope_scaling") or full
  theta = cfg.get("rope_theta") or full.get("rope_theta", 10000.0)
  out = (float(theta), _scaling(scaling))
  if cfg.get("model_type") == "gemma3_text":
    local_theta = (local or {}).get("rope_theta") or cfg.get("rope_local_base_freq", 10000.0)
    return out, (float(local_theta), None)
  return out, None


def _scaling(s: dict | None):
  """Rope scaling as sorted (key, value) pairs (hashable); None for plain rope."""
  if not s:
    return None
  kind = s.get("rope_type", s.get("type", "default"))
  if kind in ("default", None):
    return None
  if kind not in ("llama3", "linear"):
    raise PerjaxError(f"config.json: rope scaling {kind!r} is not supported (llama3, linear)")
  keep = {k: v for k, v in s.items() if k not in ("type", "rope_theta") and v is not None}
  keep["rope_type"] = kind
  return tuple(sorted(keep.items()))


def _sliding_layers(cfg: dict, family: str, layers: int) -> list[bool]:
  """Which layers attend within the sliding window."""
  if not cfg.get("sliding_window"):
    return [False] * layers
  if cfg.get("layer_types"):
    return [t == _SLIDING for t in cfg["layer_types"]]
  if family == "gemma2":  # alternating, the first layer local
    return [i % 2 == 0 for i in range(layers)]
  if family == "gemma3_text":  # every `pattern`-th layer global
    pattern = cfg.get("sliding_window_pattern", 6)
    return [(i + 1) % pattern != 0 for i in range(layers)]
  if family in ("qwen2", "qwen3"):  # only with use_sliding_window, from max_window_layers on
    first = cfg.get("max_window_layers", layers)
    return [bool(cfg.get("use_sliding_window")) and i >= first for i in range(layers)]
  return [True] * layers  # mistral, phi3: every layer


_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                  "mistral": "MistralForCausalLM", "qwen3": "Qwen3ForCausalLM",
                  "gemma2": "Gemma2ForCausalLM", "gemma3_text": "Gemma3ForCausalLM",
                  "phi3": "Phi3ForCausalLM"}


def hf_config(c) -> dict:
  """A transformers `config.json` dict for a `LlamaConfig`: the inverse of `config_kwargs`."""
  eos = list(c.eos_token_ids) if len(c.eos_token_ids) > 1 else \
      (c.eos_token_ids[0] if c.eos_token_ids else None)
  out = {"architectures": [_ARCHITECTURES[c.family]], "model_type": c.family,
         "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
         "intermediate_size": c.intermediate_size, "num_hidden_layers": c.num_layers,
         "num_attention_heads": c.num_heads, "num_key_value_heads": c.num_kv_heads,
         "head_dim": c.head_dim, "max_position_embeddings": c.max_position,
         "rms_norm_eps": c.rms_norm_eps, "rope_theta": c.rope_theta,
         "tie_word_embeddings": c.tie_embeddings, "bos_token_id": c.bos_token_id,
         "eos_token_id": eos, "pad_token_id": c.pad_token_id, "torch_dtype": "float32",
         "attention_bias": c.attention_bias}
  activation = "gelu_pytorch_tanh" if c.activation == "gelu_tanh" else "silu"
  out["hidden_activation" if c.family in _GEMMA else "hidden_act"] = activation
  if c.family == "llama":
    out["mlp_bias"] = False
  if c.rope_scaling:
    out["rope_scaling"] = dict(c.rope_scaling)
  if c.family in _GEMMA:
    scalar = (c.query_scale or c.head_dim ** -0.5) ** -2
    out["query_pre_attn_scalar"] = round(scalar) if abs(scalar - round(scalar)) < 1e-6 else scalar
    out["attn_logit_softcapping"] = c.attn_softcap
    out["final_logit_softcapping"] = c.final_softcap
  if c.local_rope_theta is not None:
    out["rope_local_base_freq"] = c.local_rope_theta
  out["sliding_window"] = c.sliding_window
  if c.sliding_layers:
    out["layer_types"] = [_SLIDING if s else _FULL for s in c.sliding_layers]
    if c.family in ("qwen2", "qwen3"):
      out.update(use_sliding_window=True, max_window_layers=c.sliding_layers.index(True))
  return out
