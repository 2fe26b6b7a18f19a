"""Checkpoints of training runs, and export/import of single groups' adapters.

One orbax `CheckpointManager` per workdir (`WORKDIR/checkpoints/<step>/`). A checkpoint holds the
*trainable* part of a `TrainState`: the step, the personal table, its optimizer state, and the
base weights and their optimizer state only when the base is trained. Frozen base weights are
never written: they come back from the model files, so a checkpoint of a per-user run is the
size of the adapters, not of the LLM. Orbax writes each step into a temporary folder and renames
it when complete, so a run killed mid-save leaves the previous checkpoint intact.

Exporting one group writes its row of every personal module's tables to `adapter.safetensors`
plus `personal.json` (each module's kind, level and options), so a user's parameters can be
shipped, inspected or loaded into any row of another model with `load_groups`, whatever the
plugin.
"""
import contextlib
import importlib
import json
import logging
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from safetensors.numpy import load_file, save_file

from perjax import distributed
from perjax.errors import ConfigError, PerjaxError
from perjax.models.personal import Personal

ADAPTER_FILE = "adapter.safetensors"
CONFIG_FILE = "personal.json"


def _trainable(state) -> dict:
  """The parts of a TrainState a checkpoint holds."""
  item = {"step": state.step, "personal": state.personal, "opt_personal": state.opt_personal}
  if state.opt_base is not None:  # the base is trained: it is state, not a model file
    item.update(base=state.base, opt_base=state.opt_base)
  return item


def abstract_state(state):
  """`state` as ShapeDtypeStructs that keep each array's sharding (a restore target)."""
  def spec(x):
    if not hasattr(x, "shape"):
      return x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))
  return jax.tree.map(spec, state)


@contextlib.contextmanager
def _quiet_logging():
  previous = logging.root.manager.disable
  logging.disable(logging.CRITICAL)
  try:
    yield
  finally:
    logging.disable(previous)


class Checkpoints:
  """The checkpoints of one workdir. `save` every step you like; the last `max_to_keep` stay."""

  def __init__(self, workdir, *, max_to_keep: int | None = 3, save_interval_steps: int = 1,
               async_save: bool = True):
    self.directory = Path(workdir).absolute() / "checkpoints"
    self.manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, save_interval_steps=save_interval_steps, create=True,
        enable_async_checkpointing=async_save))

  def save(self, state, *, force: bool = False) -> bool:
    """Save at `state.step` (if the interval says so, or `force`). Returns whether it saved."""
    return self.manager.save(int(state.step), args=ocp.args.StandardSave(_trainable(state)),
                             force=force)

  def steps(self) -> list[int]:
    self.manager.wait_until_finished()
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    self.manager.wait_until_finished()
    return self.manager.latest_step()

  def restore(self, target, step: int | None = None):
    """A TrainState: the saved parts restored into `target`'s shapes, dtypes and shardings;
    the rest (the frozen base) taken from `target` as it is. None when there is no checkpoint.

    Without `step`, the newest readable step: one that fails to restore (a damaged or partly
    deleted folder) is moved aside to `checkpoints/bad-STEP`, with one line saying so, and the
    next older step is tried."""
    if step is not None:
      return self._restore(target, step)
    steps = self.steps()
    for i in reversed(range(len(steps))):
      try:
        with _quiet_logging():  # orbax logs each failed read with a traceback of its own
          return self._restore(target, steps[i])
      except Exception as e:  # noqa: BLE001  (orbax and tensorstore raise many kinds)
        self._set_aside(steps[i], e, older=steps[i - 1] if i else None)
    return None

  def resume(self, state):
    """Resume-if-present: the newest readable checkpoint restored onto a freshly initialised
    `state` (whose frozen base is kept), or `state` itself when there is none yet."""
    restored = self.restore(state)
    return state if restored is None else restored

  def _restore(self, target, step: int):
    abstract = abstract_state(_trainable(target))
    restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return target.replace(**restored)

  def _set_aside(self, step: int, error: Exception, older: int | None) -> None:
    # Under jax.distributed every process fails on the same step: process 0 alone moves it,
    # and the others wait for the new name before they look at the folder again.
    bad = str(self._move_aside(step)) if distributed.is_primary() else ""
    bad = distributed.from_primary(bad)
    self.manager.reload()  # forget the step that is gone
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    reason = reason.split(". See full")[0][:160]  # tensorstore appends a long detail dump
    then = f"resuming from step {older}" if older is not None else "training from scratch"
    print(f"checkpoint step {step} could not be restored ({reason}); moved it to {bad}; "
          f"{then}", file=sys.stderr)

  def _move_aside(self, step: int) -> Path:
    bad = self.directory / f"bad-{step}"
    n = 1
    while bad.exists():
      n += 1
      bad = self.directory / f"bad-{step}.{n}"
    (self.directory / str(step)).rename(bad)
    return bad

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def restore_latest(workdir, abstract_state):
  """The latest checkpoint of `workdir` restored into `abstract_state` (a TrainState of arrays
  or ShapeDtypeStructs, e.g. from `jax.eval_shape`), or None when there is none. Parts not in
  the checkpoint (the frozen base) are returned as given in `abstract_state`."""
  with Checkpoints(workdir, max_to_keep=None) as ckpt:
    return ckpt.restore(abstract_state)


def resume(workdir, state):
  """Resume-if-present: the latest checkpoint restored onto a freshly initialised `state` (whose
  frozen base is kept), or `state` itself when the workdir has no checkpoint yet."""
  with Checkpoints(workdir, max_to_keep=None) as ckpt:
    return ckpt.resume(state)


# -- one group's personal parameters ---------------------------------------------------------
def _stack_of(model):
  if not isinstance(model, nnx.Module) or getattr(model, "personal", None) is None:
    raise ConfigError("the model has no personal parameters to export or load "
                      "(for a TrainState, export training.step.merge_model(graphdef, state))")
  return model.personal


def _row_of(module, g: int, level_rows) -> int:
  """The row that stands for group `g` in `module`: g itself at the run's level, else the row
  `level_rows[level]` names (a single shared row needs no name)."""
  if module.level is None:
    row = 0 if set(module.tables()) <= set(module.shared) else g  # shared tables only: row 0
  elif module.level in (level_rows or {}):
    row = level_rows[module.level]
  elif module.groups == 1:
    row = 0
  else:
    raise ConfigError(f"a module sits at level {module.level!r}: pass level_rows="
                      f"{{{module.level!r}: row}}")
  if not 0 <= row < module.groups:
    raise ConfigError(f"group {row} is outside [0, {module.groups})")
  return row


def _kind(module) -> str:
  return kind_of_class(type(module))


def kind_of_class(cls) -> str:
  """A module class's kind, as `personal.json` records it: its import path."""
  return f"{cls.__module__}.{cls.__qualname__}"


def kind_class(kind: str):
  """The module class a recorded kind names (imported by that name: the data says which)."""
  module_name, _, qualname = kind.rpartition(".")
  try:
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
      obj = getattr(obj, part)
  except (ImportError, AttributeError, ValueError):
    raise ConfigError(f"personal module kind {kind!r} cannot be imported (a plugin not loaded, "
                      "or written by an older perjax)") from None
  return obj


def export_group(model, g: int, path, *, level_rows: dict | None = None) -> Path:
  """Write group `g`'s row of every personal module to `path/adapter.safetensors` (tensors named
  `module/table`) and `path/personal.json` (each module's kind, level, options and row), so one
  user's parameters can be shipped, inspected or loaded into any row of another model."""
  stack = _stack_of(model)
  rows, modules = {}, {}
  for name, m in stack.modules():
    row = _row_of(m, g, level_rows)
    rows.update({f"{name}/{k}": np.ascontiguousarray(np.asarray(t[0 if k in m.shared else row]))
                 for k, t in m.tables().items()})
    modules[name] = {"kind": _kind(m), "level": m.level, "row": row, "options": m.describe()}
  path = Path(path)
  path.mkdir(parents=True, exist_ok=True)
  save_file(rows, str(path / ADAPTER_FILE))
  meta = {"group": g, "modules": modules,
          "shapes": {k: list(v.shape) for k, v in rows.items()},
          "dtypes": {k: str(v.dtype) for k, v in rows.items()}}
  (path / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
  return path


def read_group(path) -> tuple[dict, dict]:
  """(rows {module/table: array}, {module: kind, level, row, options}) from `export_group`."""
  path = Path(path)
  if not (path / ADAPTER_FILE).exists() or not (path / CONFIG_FILE).exists():
    raise PerjaxError(f"{path} is not an exported group (needs {ADAPTER_FILE}, {CONFIG_FILE})")
  try:
    meta = json.loads((path / CONFIG_FILE).read_text())
    modules = meta["modules"]
  except (ValueError, KeyError):
    raise PerjaxError(f"{path / CONFIG_FILE} is not a perjax export description") from None
  return load_file(str(path / ADAPTER_FILE)), modules


def load_groups(model, groups: dict, *, level_rows: dict | None = None) -> None:
  """Load exported groups into rows of `model`'s personal modules, in place: `{row: path}`.

  The modules must match by name, kind and table shapes; a module's `adapt_rows` absorbs
  option differences that keep the function (an adapter's scale, say), so the loaded
  parameters act exactly as they did when exported.
  """
  stack = _stack_of(model)
  own = dict(stack.modules())
  for g, path in groups.items():
    rows, modules = read_group(path)
    if set(modules) != set(own):
      raise ConfigError(f"{path}: modules {sorted(modules)} != the model's {sorted(own)}")
    for name, m in own.items():
      if modules[name]["kind"] != _kind(m):
        raise ConfigError(f"{path}: {name} is a {modules[name]['kind']}, the model's a {_kind(m)}")
      row = _row_of(m, g, level_rows)
      tables = {k: v for k, v in vars(m).items() if isinstance(v, Personal)}
      mine = {k: rows.get(f"{name}/{k}") for k in tables}
      for k, var in tables.items():
        if mine[k] is None or tuple(mine[k].shape) != tuple(var[...].shape[1:]):
          got = None if mine[k] is None else mine[k].shape
          raise ConfigError(f"{path}: {name}/{k} has shape {got}, expected "
                            f"{var[...].shape[1:]} (options {modules[name]['options']} vs "
                            f"{m.describe()})")
      for k, value in m.adapt_rows(mine, modules[name]["options"]).items():
        var = tables[k]
        at = 0 if k in m.shared else row  # a shared table's one row serves every group
        var[...] = var[...].at[at].set(np.asarray(value).astype(var[...].dtype))
