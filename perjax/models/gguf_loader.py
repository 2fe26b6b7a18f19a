"""Load a GGUF file of a supported family (as llama.cpp writes it): config, dequantized weights
and the tokenizer it carries."""
import numpy as np
from tqdm.auto import tqdm

from perjax.errors import PerjaxError
from perjax.models.llama import LlamaConfig


def _field(reader, key, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


# GGUF architecture (as llama.cpp writes it) -> Hugging Face model_type. llama.cpp writes
# Mistral models as "llama".
ARCHITECTURES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3",
                 "gemma2": "gemma2", "gemma3": "gemma3_text", "phi3": "phi3"}
# llama.cpp's Gemma 3 has its global layers and local rope base built in
_GEMMA3_PATTERN, _GEMMA3_LOCAL_BASE = 6, 10000.0
# llama.cpp scales Gemma's queries by head_dim ** -0.5, except the 27B models (hidden / heads)
_GEMMA_27B_LAYERS = {"gemma2": 46, "gemma3": 62}


def read_config(reader) -> LlamaConfig:
  arch = _field(reader, "general.architecture")
  if arch not in ARCHITECTURES:
    raise PerjaxError(f"GGUF architecture {arch!r} is not a supported decoder family; "
                      f"supported: {', '.join(ARCHITECTURES)}")
  k = lambda name, default=None: _field(reader, f"{arch}.{name}", default)
  heads = k("attention.head_count")
  hidden = k("embedding_length")
  names = {t.name for t in reader.tensors}
  if k("rope.scaling.type") == "llama3" or "rope_freqs.weight" in names \
      or "rope_factors_long.weight" in names:
    raise PerjaxError("GGUF files with rope_freqs (Llama 3 scaling) or long-rope factors are "
                      "not supported yet; load the Hugging Face folder instead")
  eos = _field(reader, "tokenizer.ggml.eos_token_id")
  layers = k("block_count")
  head_dim = k("attention.key_length") or hidden // heads
  cfg = {"model_type": ARCHITECTURES[arch],
         "vocab_size": k("vocab_size") or len(_field(reader, "tokenizer.ggml.tokens")),
         "hidden_size": hidden, "intermediate_size": k("feed_forward_length"),
         "num_hidden_layers": layers, "num_attention_heads": heads,
         "num_key_value_heads": k("attention.head_count_kv", heads), "head_dim": head_dim,
         "rope_theta": float(k("rope.freq_base", 10000.0)),
         "rms_norm_eps": float(k("attention.layer_norm_rms_epsilon", 1e-5)),
         "tie_word_embeddings": "output.weight" not in names,
         "attention_bias": "blk.0.attn_q.bias" in names,
         "max_position_embeddings": k("context_length", 2048),
         "bos_token_id": _field(reader, "tokenizer.ggml.bos_token_id"), "eos_token_id": eos,
         "pad_token_id": _field(reader, "tokenizer.ggml.padding_token_id", eos or 0),
         "sliding_window": k("attention.sliding_window")}
  if arch in _GEMMA_27B_LAYERS:
    big = layers == _GEMMA_27B_LAYERS[arch]
    cfg.update(hidden_activation="gelu_pytorch_tanh",
               query_pre_attn_scalar=hidden // heads if big else head_dim,
               attn_logit_softcapping=k("attn_logit_softcapping"),
               final_logit_softcapping=k("final_logit_softcapping"))
  if arch == "gemma3":
    cfg.update(sliding_window_pattern=_GEMMA3_PATTERN, rope_local_base_freq=_GEMMA3_LOCAL_BASE)
    if k("rope.scaling.type") == "linear":
      cfg["rope_scaling"] = {"rope_type": "linear", "factor": float(k("rope.scaling.factor"))}
  return LlamaConfig.from_hf(cfg)


def _unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
  """Undo llama.cpp's rotary re-layout of Q/K rows (out-features axis 0)."""
  rows = w.shape[0]
  return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# GGUF tensor name (per block) -> (perjax LayerStack field, is a [out, in] matrix)
_BLOCK_TENSORS = {
    "attn_norm.weight": ("attn_norm", False), "ffn_norm.weight": ("mlp_norm", False),
    "attn_q.weight": ("q", True), "attn_k.weight": ("k", True), "attn_v.weight": ("v", True),
    "attn_output.weight": ("o", True), "ffn_gate.weight": ("gate", True),
    "ffn_up.weight": ("up", True), "ffn_down.weight": ("down", True),
    "attn_q.bias": ("q_bias", False), "attn_k.bias": ("k_bias", False),
    "attn_v.bias": ("v_bias", False),
    "attn_q_norm.weight": ("q_norm", False), "attn_k_norm.weight": ("k_norm", False),
    "post_attention_norm.weight": ("post_attn_norm", False),  # Gemma; its ffn_norm is pre-MLP
    "post_ffw_norm.weight": ("post_mlp_norm", False),
    "attn_qkv.weight": ("qkv", True),  # Phi-3's fused projections, split by `_split_fused`
}
_PHI3_FUSED = {"qkv": ("q", "k", "v"), "up": ("gate", "up")}  # ffn_up holds gate, then up


def _block_tensor(arch: str, rest: str, w: np.ndarray, c: LlamaConfig) -> dict[str, np.ndarray]:
  """{perjax field: array} of one block tensor `w` (GGUF `[out, in]` for matrices), with
  llama.cpp's layout changes undone: the rotary re-layout of Llama's Q/K rows, the 1 added to
  Gemma's norm weights (perjax adds it in the model, as transformers does), Phi-3's fusions."""
  if rest not in _BLOCK_TENSORS:
    raise PerjaxError(f"unexpected GGUF tensor blk.N.{rest!r} for architecture {arch!r}")
  field, is_matrix = _BLOCK_TENSORS[rest]
  if arch in ("llama", "mistral") and rest.startswith(("attn_q.", "attn_k.")):
    w = _unpermute(w, c.num_heads if rest.startswith("attn_q.") else c.num_kv_heads)
  if c.norm_offset and rest.endswith("norm.weight"):
    w = w - np.float32(c.norm_offset)
  if arch == "phi3" and field in _PHI3_FUSED:
    from perjax.models.llama import projection_shapes
    names = _PHI3_FUSED[field]
    sizes = [projection_shapes(c)[n][1] for n in names]
    return {n: part.T for n, part in zip(names, np.split(w, np.cumsum(sizes)[:-1], axis=0))}
  return {field: w.T if is_matrix else w}


def leaf_blocks(reader, config: LlamaConfig) -> dict:
  """`streaming_load.place_leaves` blocks for a GGUF file: each leaf is read one layer at a
  time (that layer's tensor dequantized alone), so no float32 copy of the model is made."""
  from gguf.quants import dequantize
  c = config
  arch = _field(reader, "general.architecture")
  by_name = {t.name: t for t in reader.tensors}

  def tensor(name):
    t = by_name[name]
    w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
    return w.reshape(tuple(int(s) for s in reversed(t.shape)))

  def top(name, transform):
    return lambda layer, index, dtype: transform(tensor(name))[index].astype(dtype)

  def block(rest, field):
    return lambda layer, index, dtype: _block_tensor(
        arch, rest, tensor(f"blk.{layer}.{rest}"), c)[field][index].astype(dtype)

  blocks = {"embed": (top("token_embd.weight", lambda w: w), False),
            "final_norm": (top("output_norm.weight", lambda w: w - np.float32(c.norm_offset)),
                           False)}
  if "output.weight" in by_name:
    blocks["lm_head"] = (top("output.weight", lambda w: w.T), False)
  for name in by_name:
    if name.startswith("blk.0."):
      rest = name.split(".", 2)[2]
      if rest not in _BLOCK_TENSORS:
        raise PerjaxError(f"unexpected GGUF tensor {name!r} for architecture {arch!r}")
      field = _BLOCK_TENSORS[rest][0]
      for f in (_PHI3_FUSED.get(field, (field,)) if arch == "phi3" else (field,)):
        blocks[f"layers/{f}"] = (block(rest, f), True)
  return blocks


def read_weights(reader, config: LlamaConfig, progress: bool = True) -> dict:
  """Dequantized float32 weights in perjax layout: {'embed', 'final_norm', 'lm_head'?, 'layers': {field: [L, ...]}}."""
  from gguf.quants import dequantize

  c = config
  arch = _field(reader, "general.architecture")
  layers: dict[str, list] = {}
  out = {}
  for t in tqdm(reader.tensors, desc="dequantizing", unit="tensor", disable=not progress):
    w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
    w = w.reshape(tuple(int(s) for s in reversed(t.shape)))
    if t.name == "token_embd.weight":
      out["embed"] = w
    elif t.name == "output_norm.weight":
      out["final_norm"] = w - np.float32(c.norm_offset)
    elif t.name == "output.weight":
      out["lm_head"] = w.T
    elif t.name.startswith("blk."):
      _, index, rest = t.name.split(".", 2)
      for field, value in _block_tensor(arch, rest, w, c).items():
        layers.setdefault(field, [None] * c.num_layers)[int(index)] = value
  out["layers"] = {k: np.stack(v) for k, v in layers.items()}
  return out


def read_tokenizer(reader):
  """A transformers fast tokenizer built from the GGUF's BPE vocabulary, merges and pre-tokenizer."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, AddedToken
  from transformers import PreTrainedTokenizerFast

  kind = _field(reader, "tokenizer.ggml.model")
  if kind != "gpt2":
    raise PerjaxError(f"GGUF tokenizer model {kind!r} is not supported (only byte-level BPE)")
  tokens = _field(reader, "tokenizer.ggml.tokens")
  types = _field(reader, "tokenizer.ggml.token_type")
  merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges") or []]
  tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                             ignore_merges=False))
  pre = _field(reader, "tokenizer.ggml.pre", "default")
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  if pre == "smollm":  # individual digits, then byte-level
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level])
  else:
    tok.pre_tokenizer = byte_level
  tok.decoder = decoders.ByteLevel()
  control = [AddedToken(tokens[i], special=True, normalized=False)
             for i, ty in enumerate(types) if ty == 3]  # 3 = control token
  tok.add_special_tokens(control)
  name = lambda key: (tokens[_field(reader, key)] if _field(reader, key) is not None else None)
  return PreTrainedTokenizerFast(
      tokenizer_object=tok, bos_token=name("tokenizer.ggml.bos_token_id"),
      eos_token=name("tokenizer.ggml.eos_token_id"),
      unk_token=name("tokenizer.ggml.unknown_token_id"),
      pad_token=name("tokenizer.ggml.padding_token_id"),
      chat_template=_field(reader, "tokenizer.chat_template"))
