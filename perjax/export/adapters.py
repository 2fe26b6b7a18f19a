"""`perjax export` and `perjax import-adapter`: a finished run's (or a group folder's) personal
parameters to peft, merged Hugging Face or perjax group folders, and peft LoRAs into perjax.

A perjax group folder is what `perjax.checkpoint.export_group` writes (`adapter.safetensors` +
`personal.json`); `load_groups` loads it into any row of a model with the same modules, and
`init.adapter` makes it (or a peft folder) every row's starting point.
"""
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from perjax.checkpoint import (ADAPTER_FILE, CONFIG_FILE, _kind, kind_class, kind_of_class,
                               load_groups, read_group)
from perjax.errors import ConfigError
from perjax.export import peft_format
from perjax.export.finished_run import open_run, row_tables, select
from perjax.models.personal import LowRankDelta, OptionsMismatch, Personal, PersonalModule

FORMATS = ("peft", "merged", "perjax", "base")


def _lora_rows(name, module, row) -> LowRankDelta:
  delta = module.low_rank_delta(row_tables(module, row))
  if delta is None:
    raise ConfigError(f"module {name!r} is a {type(module).__name__}, not a low-rank delta: "
                      "peft export holds LoRA adapters (use --format merged or --format perjax)")
  return delta


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


def _group_to_loras(folder: Path) -> list[LowRankDelta]:
  """Each module of a group folder as a low-rank delta, asked of its kind's class."""
  rows, modules = read_group(folder)
  loras = []
  for name, meta in modules.items():
    tables = {k.split("/", 1)[1]: v for k, v in rows.items() if k.startswith(name + "/")}
    delta = kind_class(meta["kind"]).as_low_rank(meta["options"], tables)
    if delta is None:
      raise ConfigError(f"{folder}: module {name!r} is a {meta['kind']}, not a low-rank delta: "
                        "peft export holds LoRA adapters")
    loras.append(delta)
  return loras


def export(source, out, *, fmt: str, user: str | None = None, level: str | None = None,
           row: int | str | None = None) -> Path:
  """Writes the parameters `select` picks (a user's, or a row of a granularity) of run folder
  (or group folder) `source` into `out` in format `fmt` ("base": the run's base model, nothing
  personal); returns `out`."""
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
  selected = select(run, user=user, level=level, row=row)
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


def import_adapter(peft_dir, out, *, module: str) -> Path:
  """A peft LoRA folder as a perjax group folder of one module named `module`, of the library's
  LoRA kind (`perjax.modules.lora`: what a peft LoRA is in perjax)."""
  from perjax.modules.lora import LoRA
  lora = peft_format.read_peft(peft_dir)
  options = {"rank": lora.rank, "alpha": lora.alpha, "targets": list(lora.targets)}
  return write_group(out, {module: (kind_of_class(LoRA), None, 0, options, lora.tables)})


def init_from(model, path) -> int:
  """Every row of `model`'s run-level modules starts as the adapter in `path`: a peft LoRA
  folder, for a method with one run-level module that can hold a low-rank delta
  (`PersonalModule.low_rank_rows`), or a perjax group folder with the method's modules; returns
  the number of rows set."""
  path = Path(path)
  if model.personal is None:
    raise ConfigError("init.adapter: the method has no personal parameters to initialise")
  if (path / peft_format.CONFIG_FILE).exists():
    return _init_from_low_rank(model, peft_format.read_peft(path), path)
  rows, modules = read_group(path)
  _check_options(model, rows, modules, path)
  n = max(m.groups for _, m in model.personal.modules())
  load_groups(model, {g: path for g in range(n)})
  return n


def _holds_low_rank(module) -> bool:
  return type(module).low_rank_rows is not PersonalModule.low_rank_rows


def _init_from_low_rank(model, delta: LowRankDelta, path) -> int:
  found = [(n, m) for n, m in model.personal.modules() if m.level is None and _holds_low_rank(m)]
  if len(found) != 1:
    raise ConfigError(f"init.adapter: a peft adapter needs exactly one module at the run's "
                      f"granularity that can hold a low-rank delta, the method has {len(found)}")
  name, module = found[0]
  try:
    rows = module.low_rank_rows(delta)
  except OptionsMismatch as e:
    raise ConfigError(f"init.adapter: {path} is {e.what}; set " + " ".join(
        f"--config.methods.{name}.{k}={v}" for k, v in e.options.items())) from None
  for key, var in vars(module).items():
    if isinstance(var, Personal):
      value = np.asarray(rows[key]).astype(var[...].dtype)
      var[...] = np.broadcast_to(value, var[...].shape)
  return module.groups


def _check_options(model, rows: dict, modules: dict, path) -> None:
  """A low-rank module exported under options it cannot adapt to (another rank, say) fails
  here with the options to set, before `load_groups` compares table shapes."""
  for name, m in model.personal.modules():
    if name not in modules or not _holds_low_rank(m):
      continue
    tables = {k.split("/", 1)[1]: v for k, v in rows.items() if k.startswith(name + "/")}
    delta = kind_class(modules[name]["kind"]).as_low_rank(modules[name]["options"], tables)
    try:
      if delta is not None:
        m.low_rank_rows(delta)
    except OptionsMismatch as e:
      raise ConfigError(f"init.adapter: {path}: module {name!r} is {e.what}; set " + " ".join(
          f"--config.methods.{name}.{k}={v}" for k, v in e.options.items())) from None
