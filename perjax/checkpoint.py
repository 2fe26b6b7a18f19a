"""Checkpoints of training runs, and export/import of single groups' adapters.

One orbax `CheckpointManager` per workdir (`WORKDIR/checkpoints/<step>/`). A checkpoint holds the
*trainable* part of a `TrainState`: the step, the personal table, its optimizer state, and the
base weights and their optimizer state only when the base is trained. Frozen base weights are
never written: they come back from the model files, so a checkpoint of a per-user run is the
size of the adapters, not of the LLM. Orbax writes each step into a temporary folder and renames
it when complete, so a run killed mid-save leaves the previous checkpoint intact.

Exporting one group writes its row of every personal parameter to `adapter.safetensors` plus
`personal.json` (the PersonalConfig and shapes), so a user's adapter can be shipped, inspected
or loaded into any row of another model's table with `load_groups`.
"""
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from safetensors.numpy import load_file, save_file

from perjax.errors import ConfigError, PerjaxError
from perjax.models.personal import Personal, PersonalConfig

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
    the rest (the frozen base) taken from `target` as it is. None when there is no checkpoint."""
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    abstract = abstract_state(_trainable(target))
    restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return target.replace(**restored)

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
  restored = restore_latest(workdir, state)
  return state if restored is None else restored


# -- one group's adapter ---------------------------------------------------------------------
def _personal_of(state_or_model):
  """(flat {path: array [G, ...]}, PersonalConfig or None) of a TrainState or a model."""
  if isinstance(state_or_model, nnx.Module):
    model = state_or_model
    if getattr(model, "personal", None) is None:
      raise ConfigError("the model has no personal parameters to export")
    state, config = nnx.state(model, Personal), model.personal.config
  else:
    state, config = state_or_model.personal, None
  flat = {"/".join(str(k) for k in path): np.asarray(v)
          for path, v in nnx.to_flat_state(state)}
  return flat, config


def export_group(state_or_model, g: int, path, *, config: PersonalConfig | None = None) -> Path:
  """Write group `g`'s adapter/prompt rows to `path/adapter.safetensors` + `path/personal.json`.

  `config` is needed with a TrainState (it does not carry the LoRA alpha); a model knows its own.
  """
  flat, own = _personal_of(state_or_model)
  config = config or own
  if config is None:
    raise ConfigError("export_group of a TrainState needs config=PersonalConfig(...)")
  if not 0 <= g < config.groups:
    raise ConfigError(f"group {g} is outside [0, {config.groups})")
  path = Path(path)
  path.mkdir(parents=True, exist_ok=True)
  rows = {name: np.ascontiguousarray(a[g]) for name, a in flat.items()}
  save_file(rows, str(path / ADAPTER_FILE))
  meta = {"personal_config": dataclasses.asdict(config), "group": g,
          "shapes": {k: list(v.shape) for k, v in rows.items()},
          "dtypes": {k: str(v.dtype) for k, v in rows.items()}}
  (path / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
  return path


def read_group(path) -> tuple[dict, PersonalConfig]:
  """(rows {param path: array}, the PersonalConfig it was exported with) from `export_group`."""
  path = Path(path)
  if not (path / ADAPTER_FILE).exists() or not (path / CONFIG_FILE).exists():
    raise PerjaxError(f"{path} is not an exported group (needs {ADAPTER_FILE}, {CONFIG_FILE})")
  meta = json.loads((path / CONFIG_FILE).read_text())
  cfg = meta["personal_config"]
  cfg["lora_targets"] = tuple(cfg["lora_targets"])
  return load_file(str(path / ADAPTER_FILE)), PersonalConfig(**cfg)


def _layout(c: PersonalConfig) -> tuple:
  """What must match for a row to fit (targets only matter when there is a LoRA)."""
  return c.lora_rank, tuple(c.lora_targets) if c.lora_rank else (), c.prompt_len


def load_groups(model, groups: dict) -> None:
  """Load exported adapters into rows of `model`'s personal table, in place: `{row: path}`.

  Rank, targets and prompt length must match. A different LoRA alpha is absorbed by rescaling
  `b`, so the loaded adapter acts exactly as it did when exported.
  """
  if getattr(model, "personal", None) is None:
    raise ConfigError("the model has no personal parameters to load into")
  own = model.personal.config
  variables = dict(nnx.to_flat_state(nnx.state(model, Personal)))
  by_name = {"/".join(str(k) for k in p): v for p, v in variables.items()}
  for g, path in groups.items():
    if not 0 <= g < own.groups:
      raise ConfigError(f"group {g} is outside [0, {own.groups})")
    rows, cfg = read_group(path)
    if _layout(cfg) != _layout(own):
      raise ConfigError(f"{path}: adapter (rank {cfg.lora_rank}, targets {cfg.lora_targets}, "
                        f"prompt {cfg.prompt_len}) does not fit the model's {own}")
    if set(rows) != set(by_name):
      raise ConfigError(f"{path}: parameters {sorted(rows)} != the model's {sorted(by_name)}")
    rescale = cfg.lora_scale / own.lora_scale if own.lora_rank else 1.0
    for name, row in rows.items():
      var = by_name[name]
      if name.endswith("_b") and rescale != 1.0:
        row = row * rescale
      if tuple(row.shape) != tuple(var.value.shape[1:]):
        raise ConfigError(f"{path}: {name} has shape {row.shape}, expected {var.value.shape[1:]}")
      var.value = var.value.at[g].set(row.astype(var.value.dtype))
  nnx.update(model, nnx.from_flat_state(variables))  # a no-op where the Variables are shared
