"""A Hugging Face model folder with personal parameters merged into the base weights.

Each module folds itself in (`PersonalModule.merge_into`: LoRA as `W + a b * alpha / rank`,
(IA)^3 as a scale of the output features), in composition order, so the merged weights compute
what the personalized model does. Modules that add inputs (soft prompts) or act outside a
projection cannot be merged. Weights are written in Hugging Face's layout: `[out, in]` matrices, Q/K rows
in the order transformers expects (perjax keeps them that way, whether read from a GGUF file
or a Hugging Face folder).
"""
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from perjax.errors import ConfigError
from perjax.export.finished_run import row_tables
from perjax.models import families, hf_layout
from perjax.models.llama import LlamaConfig


def merge(weights: dict, selected) -> dict:
  """`weights` (perjax layout, from `read_checkpoint`) with the selected (name, module, row)
  merged in by each module's `merge_into`; the input is not changed."""
  layers = dict(weights["layers"])
  for name, module, row in selected:
    merged = module.merge_into(layers, row_tables(module, row))
    if merged is None:
      raise ConfigError(f"module {name!r} ({type(module).__name__}, acting at "
                        f"{list(module.hooks)}) cannot be merged into the weights; export it "
                        "with --format perjax")
    layers = merged
  return {**weights, "layers": layers}


def hf_tensors(c: LlamaConfig, weights: dict) -> dict[str, np.ndarray]:
  """perjax weights under their checkpoint names: the inverse of `hf_loader.read_weights`
  (the row blocks of a fused tensor, Phi-3's `qkv_proj`, concatenated in their order)."""
  blocks: dict[str, list] = {}
  for part in hf_layout.top_parts(c):
    blocks.setdefault(part.tensor_name(), []).append((part, weights[part.field]))
  for part in hf_layout.layer_parts(c):
    stacked = weights["layers"].get(part.field)
    for i in range(c.num_layers if stacked is not None else 0):
      blocks.setdefault(part.tensor_name(i), []).append((part, stacked[i]))
  out = {}
  for name, parts in blocks.items():
    parts.sort(key=lambda pw: (pw[0].rows or (0,))[0])
    out[name] = np.concatenate([w.T if p.transpose else w for p, w in parts], axis=0) \
        if len(parts) > 1 else (parts[0][1].T if parts[0][0].transpose else parts[0][1])
  return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def write_hf_folder(out, config: LlamaConfig, weights: dict, tokenizer=None) -> Path:
  """config.json, generation_config.json, model.safetensors and the tokenizer files (with the
  chat template) of a transformers model."""
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  save_file(hf_tensors(config, weights), str(out / "model.safetensors"),
            metadata={"format": "pt"})
  cfg = families.hf_config(config)
  (out / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
  generation = {k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
  (out / "generation_config.json").write_text(json.dumps(generation, indent=1) + "\n")
  if tokenizer is not None:
    tokenizer.save_pretrained(str(out))
  return out
