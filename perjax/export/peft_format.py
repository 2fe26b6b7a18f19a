"""LoRA adapters in peft's file format: `adapter_config.json` + `adapter_model.safetensors`.

peft names a LoRA of a Llama-family model `base_model.model.model.layers.N.self_attn.q_proj
.lora_A.weight` (`[r, d_in]`) and `...lora_B.weight` (`[d_out, r]`), and scales `x A^T B^T` by
`lora_alpha / r` (`lora_alpha / sqrt(r)` with rsLoRA). perjax's LoRA keeps `a [L, d_in, r]`,
`b [L, r, d_out]` and scales by `alpha / rank`, so the conversion is a transpose per layer and
the same alpha. perjax's Q/K weights are in Hugging Face's row order (the GGUF loader undoes
llama.cpp's rotary permutation), so q and k adapters need no permutation either.
"""
import json
import math
import re
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from perjax.errors import ConfigError
from perjax.models import hf_layout
from perjax.models.personal import LowRankDelta

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
HF_MODULES = hf_layout.PROJECTION_MODULES  # perjax projection -> module in a decoder layer
_TARGET_OF = {path.rsplit(".", 1)[1]: t for t, path in HF_MODULES.items()}  # q_proj -> q
_KEY = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+_proj)"
                  r"\.lora_([AB])\.weight$")


LoraRows = LowRankDelta  # a peft LoRA adapter is one group's low-rank delta


def combine(loras: list[LoraRows]) -> LoraRows:
  """Several LoRAs acting at once as one LoRA of their summed rank: `x a1 b1 s1 + x a2 b2 s2 =
  x [a1 a2] [b1 s1; b2 s2]`. Each scale is folded into its b and alpha = rank (scale 1);
  a target a LoRA lacks gets zero columns. A single LoRA is returned as it is."""
  if len(loras) == 1:
    return loras[0]
  targets = tuple(dict.fromkeys(t for lora in loras for t in lora.targets))
  rank = sum(lora.rank for lora in loras)
  tables = {}
  for t in targets:
    a_parts, b_parts = [], []
    shape_a, shape_b = next(((l.tables[f"{t}_a"].shape, l.tables[f"{t}_b"].shape)
                             for l in loras if t in l.targets))
    for lora in loras:
      if t in lora.targets:
        a_parts.append(lora.tables[f"{t}_a"])
        b_parts.append(lora.tables[f"{t}_b"] * np.float32(lora.scale))
      else:
        a_parts.append(np.zeros(shape_a[:-1] + (lora.rank,), np.float32))
        b_parts.append(np.zeros((shape_b[0], lora.rank, shape_b[-1]), np.float32))
    tables[f"{t}_a"] = np.concatenate(a_parts, axis=-1)
    tables[f"{t}_b"] = np.concatenate(b_parts, axis=1)
  return LoraRows(rank=rank, alpha=float(rank), targets=targets, tables=tables)


def fuse(lora: LoraRows, config) -> tuple[LoraRows, dict[str, str]]:
  """`lora` on the checkpoint's modules of `config`'s family, with {target: module path}.

  Where the checkpoint fuses projections (Phi-3's `qkv_proj` = q, k, v rows), the members'
  LoRAs become one LoRA of the fused module: their `a`s side by side, their `b`s block-diagonal
  over the members' output rows (zeros for a member without a LoRA), which computes each
  member's delta exactly. Every module is then padded with zero columns to one common rank
  (peft's single `r`), the scale kept by alpha = scale * rank."""
  if config is None or config.family != "phi3":
    return lora, {t: HF_MODULES[t] for t in lora.targets}
  from perjax.models.llama import projection_shapes
  widths = {t: o for t, (_, o) in projection_shapes(config).items()}
  tables, modules = {}, {}
  for target in lora.targets:
    fused = next(((f, module, names) for f, (module, names) in hf_layout.FUSED_MODULES.items()
                  if target in names), None)
    if fused is None:
      tables[f"{target}_a"], tables[f"{target}_b"] = lora.tables[f"{target}_a"], \
          lora.tables[f"{target}_b"]
      modules[target] = HF_MODULES[target]
    elif fused[0] not in modules:
      name, module, names = fused
      present = [t for t in names if t in lora.targets]
      a = np.concatenate([lora.tables[f"{t}_a"] for t in present], axis=-1)
      b = np.zeros((a.shape[0], a.shape[-1], sum(widths[t] for t in names)), np.float32)
      for j, t in enumerate(present):
        start = sum(widths[u] for u in names[:names.index(t)])
        b[:, j * lora.rank:(j + 1) * lora.rank, start:start + widths[t]] = lora.tables[f"{t}_b"]
      tables[f"{name}_a"], tables[f"{name}_b"], modules[name] = a, b, module
  rank = max(a.shape[-1] for k, a in tables.items() if k.endswith("_a"))
  pad = lambda x, axis: np.concatenate(
      [x, np.zeros(x.shape[:axis] + (rank - x.shape[axis],) + x.shape[axis + 1:], x.dtype)],
      axis=axis)
  tables = {k: pad(np.asarray(x, np.float32), 2 if k.endswith("_a") else 1)  # [L, d, r], [L, r, o]
            for k, x in tables.items()}
  fused_lora = LoraRows(rank=rank, alpha=lora.scale * rank, targets=tuple(modules),
                        tables=tables)
  return fused_lora, modules


def to_peft_tensors(lora: LoraRows, modules: dict[str, str]) -> dict[str, np.ndarray]:
  out = {}
  for t in lora.targets:
    a, b = np.asarray(lora.tables[f"{t}_a"]), np.asarray(lora.tables[f"{t}_b"])
    for i in range(a.shape[0]):
      stem = f"base_model.model.model.layers.{i}.{modules[t]}"
      out[f"{stem}.lora_A.weight"] = np.ascontiguousarray(a[i].T, dtype=np.float32)
      out[f"{stem}.lora_B.weight"] = np.ascontiguousarray(b[i].T, dtype=np.float32)
  return out


def adapter_config(lora: LoraRows, base_model: str | None, modules: dict[str, str]) -> dict:
  """peft's LoraConfig fields for `lora` (the ones a loader reads; the rest keep defaults)."""
  alpha = int(lora.alpha) if float(lora.alpha).is_integer() else lora.alpha
  return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
          "r": lora.rank, "lora_alpha": alpha, "lora_dropout": 0.0,
          "target_modules": sorted(modules[t].rsplit(".", 1)[1] for t in lora.targets),
          "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "use_dora": False,
          "init_lora_weights": True, "inference_mode": True, "modules_to_save": None,
          "layers_to_transform": None, "rank_pattern": {}, "alpha_pattern": {}}


def write_peft(folder, lora: LoraRows, *, base_model: str | None = None, config=None) -> Path:
  """`lora` as a peft folder; `config` (the base's `LlamaConfig`) names the checkpoint's
  modules, fused ones included (None: unfused Llama-style names)."""
  folder = Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  lora, modules = fuse(lora, config)
  save_file(to_peft_tensors(lora, modules), str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
  (folder / CONFIG_FILE).write_text(
      json.dumps(adapter_config(lora, base_model, modules), indent=1) + "\n")
  return folder


def _unsupported(cfg: dict) -> str | None:
  """What in a peft config the conversion cannot represent (None: nothing)."""
  if cfg.get("peft_type") != "LORA":
    return f"peft_type {cfg.get('peft_type')!r} (only LORA)"
  if cfg.get("bias", "none") != "none":
    return f"bias={cfg['bias']!r}"
  for key in ("use_dora", "fan_in_fan_out", "modules_to_save", "layers_to_transform",
              "rank_pattern", "alpha_pattern", "layer_replication", "lora_bias"):
    if cfg.get(key):  # None, False, {} and [] are the plain settings
      return f"{key}={cfg[key]!r}"
  return None


def read_peft(folder) -> LoraRows:
  """The LoRA of a peft folder, in perjax's layout; a one-line ConfigError for a folder this
  conversion cannot represent exactly (DoRA, biases, per-module ranks, extra modules)."""
  folder = Path(folder)
  if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
    raise ConfigError(f"{folder} is not a peft adapter folder (needs {CONFIG_FILE} and "
                      f"{WEIGHTS_FILE})")
  try:
    cfg = json.loads((folder / CONFIG_FILE).read_text())
  except ValueError as e:
    raise ConfigError(f"{folder / CONFIG_FILE} is not valid JSON ({e})") from None
  problem = _unsupported(cfg)
  if problem:
    raise ConfigError(f"{folder}: the adapter uses {problem}, which perjax's LoRA cannot hold")
  rank, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
  if cfg.get("use_rslora"):  # scale alpha / sqrt(r) == alpha' / r
    alpha = alpha * math.sqrt(rank)
  layers: dict[tuple[str, str], dict[int, np.ndarray]] = {}
  for key, value in load_file(str(folder / WEIGHTS_FILE)).items():
    m = _KEY.match(key)
    if not m or m.group(2) not in _TARGET_OF:
      raise ConfigError(f"{folder / WEIGHTS_FILE}: tensor {key!r} is not a LoRA weight of a "
                        "Llama-family decoder layer")
    index, module, ab = int(m.group(1)), m.group(2), m.group(3)
    layers.setdefault((_TARGET_OF[module], ab), {})[index] = np.asarray(value, np.float32)
  if not layers:
    raise ConfigError(f"{folder / WEIGHTS_FILE} holds no LoRA weights")
  num_layers = 1 + max(i for per in layers.values() for i in per)
  targets = tuple(t for t in HF_MODULES if (t, "A") in layers)
  tables = {}
  for t in targets:
    for ab, name in (("A", "a"), ("B", "b")):
      per = layers.get((t, ab), {})
      if sorted(per) != list(range(num_layers)):
        raise ConfigError(f"{folder}: {t} lora_{ab} covers layers {sorted(per)}, not all "
                          f"{num_layers}")
      stacked = np.stack([per[i].T for i in range(num_layers)])
      if stacked.shape[-1 if ab == "A" else 1] != rank:
        raise ConfigError(f"{folder}: {t} lora_{ab} has shape {per[0].shape}, not rank r={rank}")
      tables[f"{t}_{name}"] = stacked
  return LoraRows(rank=rank, alpha=alpha, targets=targets, tables=tables)
