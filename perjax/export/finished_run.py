"""A finished run's personal parameters, read back without loading the base model's weights
(`personalized_model` builds the whole personalized model when it is needed).

The run's config (`config.json`) says which personal modules it built; the model's geometry
comes from the model file's header (or the tiny test model's config); the tables come from the
run's latest checkpoint; `predictions.jsonl` says which row answered each user.
"""
import dataclasses
import json
from pathlib import Path

import ml_collections
import numpy as np
from flax import nnx

from perjax.errors import ConfigError, PerjaxError
from perjax.grouping import groupings, is_shared
from perjax.models.llama import LlamaConfig
from perjax.models.personal import Personal, PersonalModule, PersonalStack, build_stack

PREDICTIONS_FILE = "predictions.jsonl"
GROUPS_FILE = "groups.json"  # {level: the name of each row}, written by the runner


@dataclasses.dataclass
class FinishedRun:
  workdir: Path
  config: ml_collections.ConfigDict
  model_config: LlamaConfig
  stack: PersonalStack
  records: list[dict]
  names: dict = dataclasses.field(default_factory=dict)  # {level: row names}, from groups.json

  def group_of_user(self, user: str) -> int:
    groups = {r["user_id"]: r["group"] for r in self.records}
    if user not in groups:
      some = ", ".join(sorted(groups)[:8])
      raise ConfigError(f"user {user!r} has no rows in {self.workdir / PREDICTIONS_FILE} "
                        f"(users there: {some}{', ...' if len(groups) > 8 else ''})")
    return int(groups[user])


def model_geometry(name: str) -> LlamaConfig:
  """The decoder's config from the model file's metadata only (no weights are read)."""
  from perjax.models import decoder_loading, zoo
  if name.startswith(decoder_loading.TINY_PREFIX):
    from perjax.models.llama import tiny_llama_config
    from perjax.models.tiny_tokenizer import byte_tokenizer
    tok = byte_tokenizer()
    return tiny_llama_config(vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                             eos_token_ids=(tok.eos_token_id,), pad_token_id=tok.pad_token_id)
  path = zoo.resolve(name)
  if path.is_file() and path.suffix == ".gguf":
    from gguf import GGUFReader
    from perjax.models import gguf_loader
    return gguf_loader.read_config(GGUFReader(str(path)))
  from perjax.models import hf_loader
  return hf_loader.read_config(path)


def read_config(workdir) -> ml_collections.ConfigDict:
  """The config of a finished run in `workdir`."""
  workdir = Path(workdir)
  path = workdir / "config.json"
  if not (workdir / "metrics.json").exists() or not path.exists():
    raise PerjaxError(f"{workdir} is not a finished run (needs config.json and metrics.json)")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def _restore_personal(workdir: Path) -> dict:
  """{module: {table: array}} of the run's latest checkpoint."""
  import orbax.checkpoint as ocp
  from perjax.checkpoint import _quiet_logging
  directory = workdir.absolute() / "checkpoints"
  if not directory.is_dir():
    raise PerjaxError(f"{workdir} has no checkpoints: its method trains no personal parameters")
  with _quiet_logging(), ocp.CheckpointManager(directory) as manager:
    step = manager.latest_step()
    if step is None:
      raise PerjaxError(f"{directory} holds no checkpoint")
    restored = manager.restore(step, args=ocp.args.StandardRestore())
  stack = restored["personal"]["personal"]  # the model's state below its `personal` attribute
  return {name: {k: np.asarray(v["value"] if isinstance(v, dict) else v)
                 for k, v in tables.items()}
          for name, tables in stack.items()}


def open_run(workdir) -> FinishedRun:
  """The personal modules of a finished run, with their trained tables."""
  from perjax.experiment.options import check_run
  from perjax.models.llama import dims
  workdir = Path(workdir)
  config = read_config(workdir)
  recipe = check_run(config)
  if not recipe.modules:
    raise ConfigError(f"{workdir}: method {config.method!r} has no personal parameters to export")
  tables = _restore_personal(workdir)
  missing = [s.name for s in recipe.modules if s.name not in tables]
  if missing:
    raise PerjaxError(f"{workdir}: the latest checkpoint lacks module(s) {missing}")
  groups_of_level = {s.level: next(iter(tables[s.name].values())).shape[0]
                     for s in recipe.modules}
  model_config = model_geometry(config.model)
  stack = build_stack(recipe.modules, groups_of_level, dims(model_config), nnx.Rngs(0))
  for name, module in stack.modules():
    for key, var in vars(module).items():
      if isinstance(var, Personal):
        if tuple(var[...].shape) != tables[name][key].shape:
          raise PerjaxError(f"{workdir}: checkpoint table {name}/{key} has shape "
                            f"{tables[name][key].shape}, the config builds {var[...].shape}")
        var[...] = tables[name][key]
  records = []
  predictions = workdir / PREDICTIONS_FILE
  if predictions.exists():
    records = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
  groups_file = workdir / GROUPS_FILE
  names = json.loads(groups_file.read_text()) if groups_file.exists() else {}
  return FinishedRun(workdir, config, model_config, stack, records, names)


def level_row(run: FinishedRun, level: str, row) -> int:
  """A group's row at `level`: a row number, or the group's name in the run's groups.json."""
  if isinstance(row, int) or str(row).isdigit():
    return int(row)
  names = run.names.get(level)
  if names is None:
    raise ConfigError(f"{run.workdir} records no {level} names ({GROUPS_FILE}); give the row "
                      "number (the group column of predictions.jsonl)")
  if row not in names:
    raise ConfigError(f"{level} {row!r} is not one of {names}")
  return names.index(row)


def select(run: FinishedRun, *, user: str | None = None, level: str | None = None,
           row: int | str | None = None) -> list[tuple[str, PersonalModule, int]]:
  """(module name, module, row) of each module an export holds, always with the modules of a
  shared level (one row for everyone, `lora@global`).

  `user`: every module at the run's own granularity, at the row that answered the user.
  `level` (a granularity) with `row` (a number or a group name): that row of the modules at
  that level (the run's, or `name@level`); a shared level needs no row.
  """
  if (user is None) == (level is None):
    raise ConfigError("name exactly one of --user USER or a granularity (" + ", ".join(
        f"--{g.name}" for g in groupings() if not g.per_user) + ")")
  run_level = run.config.granularity
  if level is not None and not is_shared(level):
    if row is None:
      raise ConfigError(f"--{level} needs a row (a number or a group name)")
    row = level_row(run, level, row)
  out = []
  for name, m in run.stack.modules():
    at = m.level or run_level
    if is_shared(at):
      out.append((name, m, 0))
    elif user is not None and m.level is None:
      out.append((name, m, run.group_of_user(user)))
    elif level is not None and at == level:
      if not 0 <= row < m.groups:
        raise ConfigError(f"--{level} {row}: module {name!r} has {level} rows "
                          f"0..{m.groups - 1}")
      out.append((name, m, row))
    elif user is not None:  # e.g. lora@persona in a user run: which row answered is not recorded
      raise ConfigError(f"module {name!r} sits at level {m.level!r}, whose row for user {user!r} "
                        f"the run does not record; export it with --{m.level} ROW")
  # the asked-for level must have a module of its own, not just the shared rows
  wanted = (lambda m: m.level is None) if user is not None else (
      lambda m: (m.level or run_level) == level)
  if not any(wanted(m) for _, m, _ in out):
    what = f"user {user!r}" if user is not None else (
        f"the {level} level" if is_shared(level) else f"{level} row {row}")
    raise ConfigError(f"{run.workdir}: no personal module of {run.config.method!r} sits at "
                      f"{what} (run granularity {run_level})")
  return out


def row_tables(module: PersonalModule, row: int) -> dict[str, np.ndarray]:
  return {k: np.asarray(t[row], np.float32) for k, t in module.tables().items()}


def personalized_model(run: FinishedRun):
  """(model, tokenizer): the run's base model with its trained personal tables, float32."""
  from perjax.experiment.options import check_run
  from perjax.models import decoder_loading
  from perjax.models.personal import stack_builder
  groups_of_level = {m.level: m.groups for _, m in run.stack.modules()}
  builder = stack_builder(check_run(run.config).modules, groups_of_level)
  model, tokenizer = decoder_loading.load_decoder(run.config.model, personal=builder,
                                                  seed=run.config.seed, progress=False)
  for name, module in model.personal.modules():
    trained = dict(run.stack.modules())[name].tables()
    for key, var in vars(module).items():
      if isinstance(var, Personal):
        var[...] = trained[key]
  return model, tokenizer
