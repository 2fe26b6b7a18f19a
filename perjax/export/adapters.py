"""`perjax export` and `perjax import-adapter`: a finished run's (or a group folder's) personal
parameters to peft, merged Hugging Face or perjax group folders, and peft LoRAs into perjax.

A perjax group folder is what `perjax.checkpoint.export_group` writes (`adapter.safetensors` +
`personal.json`); `load_groups` loads it into any row of a model with the same modules, and
`init.adapter` makes it (or a peft folder) every row's starting point.
"""
import json
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from perjax.checkpoint import ADAPTER_FILE, CONFIG_FILE, _kind, load_groups, read_group
from perjax.errors import ConfigError
from perjax.export import peft_format
from perjax.export.finished_run import open_run, row_tables, select

FORMATS = ("peft", "merged", "perjax", "base")
IMPORTED_MODULE = "lora"  # the module name a `method=lora` run gives its adapter


def _lora_rows(name, module, row) -> peft_format.LoraRows:
  delta = module.low_rank_delta(row_tables(module, row))
  if delta is None:
    raise ConfigError(f"module {name!r} is a {type(module).__name__}, not a low-rank delta: "
                      "peft export holds LoRA adapters (use --format merged or --format perjax)")
  rank, alpha, targets, tables = delta
  return peft_format.LoraRows(rank=rank, alpha=alpha, targets=tuple(targets), tables=tables)


def write_group(out, modules: dict, *, group: int = 0) -> Path:
  """A perjax group folder from {module name: (kind, level, row, options, {table: array})}."""
  rows = {f"{name}/{k}": np.ascontiguousarray(v, np.float32)
          for name, (_, _, _, _, tables) in modules.items() for k, v in tables.items()}
  meta = {"group": group,
          "modules": {name: {"kind": kind, "level": level, "row": row, "options": options}
                      for name, (kind, level, row, options, _) in modules.items()},
          "shapes": {k: list(v.shape) for k, v in rows.items()},
          "dtypes": {k: str(v.dtype) for k, v in rows.items()}}
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  save_file(rows, str(out / ADAPTER_FILE))
  (out / CONFIG_FILE).write_text(json.dumps(meta, indent=1) + "\n")
  return out


def _group_to_loras(folder: Path) -> list[peft_format.LoraRows]:
  from methods.lora import LoRA
  rows, modules = read_group(folder)
  loras = []
  for name, meta in modules.items():
    if meta["kind"] != _kind_of_class(LoRA):
      raise ConfigError(f"{folder}: module {name!r} is a {meta['kind']}, not a LoRA: peft "
                        "export holds LoRA adapters")
    o = meta["options"]
    tables = {k.split("/", 1)[1]: v for k, v in rows.items() if k.startswith(name + "/")}
    loras.append(peft_format.LoraRows(rank=int(o["rank"]), alpha=float(o["alpha"]),
                                      targets=tuple(o["targets"]), tables=tables))
  return loras


def _kind_of_class(cls) -> str:
  return f"{cls.__module__}.{cls.__qualname__}"


def export(source, out, *, fmt: str, user: str | None = None,
           persona: int | str | None = None, global_: bool = False) -> Path:
  """Writes the selected granularity's parameters of run folder (or group folder) `source`
  into `out` in format `fmt` ("base": the run's base model, nothing personal); returns `out`."""
  if fmt not in FORMATS:
    raise ConfigError(f"--format {fmt!r}: choose one of {list(FORMATS)}")
  source = Path(source)
  if fmt == "base":  # the run's base model as a transformers folder (what LoRAs are served on)
    from perjax.export import merged
    from perjax.export.finished_run import model_geometry, read_config
    config = read_config(source)
    weights, tokenizer = base_weights(config)
    return merged.write_hf_folder(out, model_geometry(config.model), weights, tokenizer)
  if (source / CONFIG_FILE).exists() and (source / ADAPTER_FILE).exists():  # a group folder
    if fmt != "peft":
      raise ConfigError(f"{source} is a group folder: it exports to --format peft only")
    return peft_format.write_peft(out, peft_format.combine(_group_to_loras(source)))
  run = open_run(source)
  selected = select(run, user=user, persona=persona, global_=global_)
  if fmt == "peft":
    loras = [_lora_rows(*s) for s in selected]
    return peft_format.write_peft(out, peft_format.combine(loras), base_model=run.config.model,
                                  config=run.model_config)
  if fmt == "perjax":
    return write_group(out, {name: (_kind(m), m.level, row, m.describe(), row_tables(m, row))
                             for name, m, row in selected})
  from perjax.export import merged
  weights, tokenizer = base_weights(run.config)
  return merged.write_hf_folder(out, run.model_config, merged.merge(weights, selected), tokenizer)


def base_weights(config) -> tuple[dict, object]:
  """(float32 base weights in perjax layout, tokenizer) of a run's model."""
  from perjax.models import decoder_loading
  if config.model.startswith(decoder_loading.TINY_PREFIX):  # random weights, from the run's seed
    model, tokenizer = decoder_loading.load_decoder(config.model, seed=config.seed)
    weights = {"embed": model.embed[...], "final_norm": model.final_norm[...],
               "layers": model.layers.arrays()}
    if model.lm_head is not None:
      weights["lm_head"] = model.lm_head[...]
    import jax
    return jax.tree.map(np.asarray, weights), tokenizer
  _, weights, tokenizer = decoder_loading.read_checkpoint(config.model, progress=False)
  return weights, tokenizer


def import_adapter(peft_dir, out, *, module: str = IMPORTED_MODULE) -> Path:
  """A peft LoRA folder as a perjax group folder of one LoRA module named `module`."""
  from methods.lora import LoRA
  lora = peft_format.read_peft(peft_dir)
  options = {"rank": lora.rank, "alpha": lora.alpha, "targets": list(lora.targets)}
  return write_group(out, {module: (_kind_of_class(LoRA), None, 0, options, lora.tables)})


def init_from(model, path) -> int:
  """Every row of `model`'s run-level modules starts as the adapter in `path` (a peft LoRA
  folder, for a method with one LoRA, or a perjax group folder with the method's modules);
  returns the number of rows set."""
  path = Path(path)
  if (path / peft_format.CONFIG_FILE).exists():
    with tempfile.TemporaryDirectory(prefix="perjax-init-") as tmp:
      group = import_adapter(path, Path(tmp) / "group", module=_run_level_lora(model)[0])
      return _init_rows(model, group)
  return _init_rows(model, path)


def _init_rows(model, path: Path) -> int:
  if model.personal is None:
    raise ConfigError("init.adapter: the method has no personal parameters to initialise")
  _, modules = read_group(path)
  _check_lora_options(model, modules, path)
  n = max(m.groups for _, m in model.personal.modules())
  load_groups(model, {g: path for g in range(n)}, level_rows={"global": 0})
  return n


def _run_level_lora(model):
  from methods.lora import LoRA
  found = [(n, m) for n, m in (model.personal.modules() if model.personal else [])
           if isinstance(m, LoRA) and m.level is None]
  if len(found) != 1:
    raise ConfigError(f"init.adapter: a peft adapter needs exactly one LoRA module at the run's "
                      f"granularity, the method has {len(found)}")
  return found[0]


def _check_lora_options(model, modules: dict, path) -> None:
  """The rank and targets must match (alpha may differ: `LoRA.adapt_rows` rescales)."""
  from methods.lora import LoRA
  for name, m in model.personal.modules():
    if name in modules and isinstance(m, LoRA):
      o = modules[name]["options"]
      if int(o["rank"]) != m.rank or tuple(o["targets"]) != tuple(m.targets):
        raise ConfigError(
            f"init.adapter: {path} is a rank-{o['rank']} LoRA on {','.join(o['targets'])}; set "
            f"--config.methods.lora.rank={o['rank']} "
            f"--config.methods.lora.targets={','.join(o['targets'])}")
