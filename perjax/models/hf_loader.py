"""Load a Llama-family model from a Hugging Face folder (config.json, *.safetensors, tokenizer)."""
import json
from pathlib import Path

import numpy as np

from perjax.errors import PerjaxError
from perjax.models.llama import LlamaConfig
from perjax.models.safetensors_io import read_safetensors

_LAYER_TENSORS = {
    "input_layernorm.weight": ("attn_norm", False),
    "post_attention_layernorm.weight": ("mlp_norm", False),
    "self_attn.q_proj.weight": ("q", True), "self_attn.k_proj.weight": ("k", True),
    "self_attn.v_proj.weight": ("v", True), "self_attn.o_proj.weight": ("o", True),
    "self_attn.q_proj.bias": ("q_bias", False), "self_attn.k_proj.bias": ("k_bias", False),
    "self_attn.v_proj.bias": ("v_bias", False),
    "mlp.gate_proj.weight": ("gate", True), "mlp.up_proj.weight": ("up", True),
    "mlp.down_proj.weight": ("down", True),
}


def read_config(folder: Path) -> LlamaConfig:
  path = Path(folder) / "config.json"
  try:
    cfg = json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise PerjaxError(f"cannot read {path}: {e}") from None
  if cfg.get("model_type") not in ("llama", "qwen2", "mistral"):
    raise PerjaxError(f"{path}: model_type {cfg.get('model_type')!r} is not a Llama-family decoder")
  return LlamaConfig.from_hf(cfg)


def read_weights(folder: Path, config: LlamaConfig) -> dict:
  """float32 weights in perjax layout (see gguf_loader.read_weights)."""
  raw = read_safetensors(folder)
  get = lambda name: np.asarray(raw[name], np.float32)
  out = {"embed": get("model.embed_tokens.weight"), "final_norm": get("model.norm.weight")}
  if not config.tie_embeddings:
    out["lm_head"] = get("lm_head.weight").T
  layers: dict[str, list] = {}
  for i in range(config.num_layers):
    for suffix, (field, is_matrix) in _LAYER_TENSORS.items():
      name = f"model.layers.{i}.{suffix}"
      if name not in raw:
        continue
      w = get(name)
      layers.setdefault(field, []).append(w.T if is_matrix else w)
  out["layers"] = {k: np.stack(v) for k, v in layers.items()}
  return out


def read_tokenizer(folder: Path):
  from transformers import AutoTokenizer
  return AutoTokenizer.from_pretrained(str(folder))
