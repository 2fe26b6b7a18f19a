"""Load a decoder of any supported family from a Hugging Face folder (config.json, *.safetensors, tokenizer)."""
import json
from pathlib import Path

import numpy as np

from perjax.errors import PerjaxError
from perjax.models import families, hf_layout
from perjax.models.hf_layout import Part
from perjax.models.llama import LlamaConfig
from perjax.models.safetensors_io import read_safetensors


def read_config(folder: Path) -> LlamaConfig:
  path = Path(folder) / "config.json"
  try:
    cfg = json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise PerjaxError(f"cannot read {path}: {e}") from None
  families.check_supported(cfg.get("model_type"), str(path))
  return LlamaConfig.from_hf(cfg)


def read_weights(folder: Path, config: LlamaConfig) -> dict:
  """float32 weights in perjax layout (see gguf_loader.read_weights), named by `hf_layout`."""
  raw = read_safetensors(folder)

  def get(part: Part, layer=None):
    return part.take(np.asarray(raw[part.tensor_name(layer)], np.float32))

  out = {p.field: get(p) for p in hf_layout.top_parts(config)}
  layers = {}
  for part in hf_layout.layer_parts(config):
    if part.tensor_name(0) in raw:  # optional leaves (biases) are absent from some families
      layers[part.field] = np.stack([get(part, i) for i in range(config.num_layers)])
  out["layers"] = layers
  return out


def read_tokenizer(folder: Path):
  from transformers import AutoTokenizer
  return AutoTokenizer.from_pretrained(str(folder))
