"""A GGUF file of a tiny Hugging Face checkpoint, written the way llama.cpp's converter writes
one: run with the reference Python only (gguf, safetensors, numpy).

  tiny_gguf.py HF_DIR OUT.gguf

Tensor names come from gguf-py's own name map (llama.cpp's table). The layout changes are
llama.cpp's: Llama (and Mistral, written as "llama") Q/K rows permuted for its rotary kernel,
1 added to Gemma's norm weights, Phi-3's fused tensors kept fused. The tokenizer is a plain
vocabulary (tests feed token ids). float32 tensors, so the weights are exact.
"""
import json
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3",
        "gemma2": "gemma2", "gemma3_text": "gemma3", "phi3": "phi3"}


def permute(w, n_heads):  # llama.cpp's LlamaModel.permute
  return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2) \
      .reshape(w.shape)


def main(folder, out):
  folder = Path(folder)
  cfg = json.loads((folder / "config.json").read_text())
  arch = ARCH[cfg["model_type"]]
  heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
  head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
  tensors = {}
  for f in sorted(folder.glob("*.safetensors")):
    tensors.update(load_file(str(f)))
  names = gguf.get_tensor_name_map(next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch),
                                   cfg["num_hidden_layers"])
  w = gguf.GGUFWriter(out, arch)
  w.add_block_count(cfg["num_hidden_layers"])
  w.add_context_length(cfg["max_position_embeddings"])
  w.add_embedding_length(cfg["hidden_size"])
  w.add_feed_forward_length(cfg["intermediate_size"])
  w.add_head_count(heads)
  w.add_head_count_kv(kv)
  w.add_key_length(head_dim)
  w.add_value_length(head_dim)
  rope = cfg.get("rope_parameters") or {}
  rope = rope.get("full_attention", rope)
  w.add_rope_freq_base(float(cfg.get("rope_theta") or rope.get("rope_theta", 10000.0)))
  if rope.get("rope_type") == "linear":
    w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    w.add_rope_scaling_factor(float(rope["factor"]))
  w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
  w.add_vocab_size(cfg["vocab_size"])
  if cfg.get("sliding_window") and arch in ("gemma2", "gemma3", "phi3"):
    w.add_sliding_window(cfg["sliding_window"])
  if arch == "gemma2":
    w.add_attn_logit_softcapping(cfg["attn_logit_softcapping"])
    w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
  w.add_tokenizer_model("gpt2")
  w.add_tokenizer_pre("default")
  w.add_token_list([f"<t{i}>" for i in range(cfg["vocab_size"])])
  types = [gguf.TokenType.NORMAL] * cfg["vocab_size"]
  for special in (cfg.get("bos_token_id"), cfg.get("eos_token_id")):
    if isinstance(special, int):
      types[special] = gguf.TokenType.CONTROL
  w.add_token_types(types)
  w.add_token_merges([])
  w.add_bos_token_id(cfg["bos_token_id"])
  w.add_eos_token_id(cfg["eos_token_id"] if isinstance(cfg["eos_token_id"], int)
                     else cfg["eos_token_id"][0])
  w.add_pad_token_id(cfg["pad_token_id"])
  for name, t in tensors.items():
    t = np.asarray(t, np.float32)
    if arch == "llama" and name.endswith("q_proj.weight"):
      t = permute(t, heads)
    elif arch == "llama" and name.endswith("k_proj.weight"):
      t = permute(t, kv)
    if arch in ("gemma2", "gemma3") and name.endswith("norm.weight"):
      t = t + 1
    new = names.get_name(name, try_suffixes=(".weight", ".bias"))
    if new is None:
      raise SystemExit(f"no GGUF name for {name}")
    w.add_tensor(new, np.ascontiguousarray(t))
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()


if __name__ == "__main__":
  main(*sys.argv[1:])
