"""Load a Llama-family GGUF file: config, dequantized weights and the tokenizer it carries."""
import numpy as np
from tqdm.auto import tqdm

from perjax.errors import PerjaxError
from perjax.models.llama import LlamaConfig


def _field(reader, key, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def read_config(reader) -> LlamaConfig:
  arch = _field(reader, "general.architecture")
  if arch not in ("llama", "qwen2", "mistral"):
    raise PerjaxError(f"GGUF architecture {arch!r} is not a supported Llama-family decoder")
  k = lambda name, default=None: _field(reader, f"{arch}.{name}", default)
  heads = k("attention.head_count")
  hidden = k("embedding_length")
  names = {t.name for t in reader.tensors}
  eos = _field(reader, "tokenizer.ggml.eos_token_id")
  scaling = None
  if k("rope.scaling.type") == "llama3" or "rope_freqs.weight" in names:
    raise PerjaxError("GGUF files with Llama-3 rope_freqs are not supported yet; "
                      "load the Hugging Face folder instead")
  return LlamaConfig(
      family=arch,
      vocab_size=k("vocab_size") or len(_field(reader, "tokenizer.ggml.tokens")),
      hidden_size=hidden, intermediate_size=k("feed_forward_length"),
      num_layers=k("block_count"), num_heads=heads,
      num_kv_heads=k("attention.head_count_kv", heads),
      head_dim=k("attention.key_length") or hidden // heads,
      rope_theta=float(k("rope.freq_base", 10000.0)), rope_scaling=scaling,
      rms_norm_eps=float(k("attention.layer_norm_rms_epsilon", 1e-5)),
      tie_embeddings="output.weight" not in names,
      attention_bias="blk.0.attn_q.bias" in names,
      max_position=k("context_length", 2048),
      bos_token_id=_field(reader, "tokenizer.ggml.bos_token_id"),
      eos_token_ids=(eos,) if eos is not None else (),
      pad_token_id=_field(reader, "tokenizer.ggml.padding_token_id", eos or 0))


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
}


def read_weights(reader, config: LlamaConfig, progress: bool = True) -> dict:
  """Dequantized float32 weights in perjax layout: {'embed', 'final_norm', 'lm_head'?, 'layers': {field: [L, ...]}}."""
  from gguf.quants import dequantize

  c = config
  layers: dict[str, list] = {}
  out = {}
  for t in tqdm(reader.tensors, desc="dequantizing", unit="tensor", disable=not progress):
    w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
    w = w.reshape(tuple(int(s) for s in reversed(t.shape)))
    if t.name == "token_embd.weight":
      out["embed"] = w
    elif t.name == "output_norm.weight":
      out["final_norm"] = w
    elif t.name == "output.weight":
      out["lm_head"] = w.T
    elif t.name.startswith("blk."):
      _, index, rest = t.name.split(".", 2)
      if rest not in _BLOCK_TENSORS:
        raise PerjaxError(f"unexpected GGUF tensor {t.name!r}")
      field, is_matrix = _BLOCK_TENSORS[rest]
      if rest.startswith("attn_q."):
        w = _unpermute(w, c.num_heads)
      elif rest.startswith("attn_k."):
        w = _unpermute(w, c.num_kv_heads)
      layers.setdefault(field, [None] * c.num_layers)[int(index)] = w.T if is_matrix else w
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
  merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges")]
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
