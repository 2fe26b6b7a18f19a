"""Settings checked before a run touches its workdir: each problem is one line naming the field.

Cheap checks only: numbers in range, and models resolvable by name or path without reading
any weights (a Hugging Face hub id is left to the loader, which needs the network).
"""
import math
import re
from pathlib import Path

from perjax.errors import ConfigError
from perjax.registry import MODELS, OPTIMIZERS, suggest

_TINY_PREFIX = "tiny-llama"  # perjax.models.decoder_loading.TINY_PREFIX, without importing jax
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DTYPES = ("float32", "bfloat16")


def _field(config, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def _positive_int(config, dotted: str, minimum: int = 1) -> None:
  value = _field(config, dotted)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    need = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    raise ConfigError(f"{dotted} must be {need}, got {value!r}")


def _looks_like_path(name: str) -> bool:
  return name.startswith(("/", ".", "~")) or name.endswith(".gguf")


def check_model(name: str, kind: str, field: str) -> None:
  """`name` is a zoo entry of `kind`, an existing model file or folder, or a hub id."""
  if kind == "gguf-decoder" and name.startswith(_TINY_PREFIX):
    return
  import perjax.models.zoo  # noqa: F401  (registers the zoo entries)
  if name in MODELS:
    entry = MODELS.get(name)
    if entry.kind != kind:
      what = "an encoder" if entry.kind == "encoder" else "a decoder"
      raise ConfigError(f"{field} {name!r} is {what}; see `perjax models list`")
    return
  path = Path(name).expanduser()
  if path.exists():
    if path.is_dir() and not (path / "config.json").exists():
      raise ConfigError(f"{field} {name!r} is a folder without config.json, not a model folder")
    if path.is_file() and (kind == "encoder" or path.suffix != ".gguf"):
      raise ConfigError(f"{field} {name!r} is a file; expected "
                        f"{'a model folder' if kind == 'encoder' else 'a .gguf file or a folder'}")
    return
  if _HUB_ID.match(name) and not _looks_like_path(name):
    return  # a Hugging Face hub id: only the loader can tell
  known = [n for n, e in MODELS.items() if e.kind == kind]
  if kind == "gguf-decoder":
    known.append(_TINY_PREFIX)
  raise ConfigError(f"{field}: unknown model {name!r}{suggest(name, known)} (not a local path "
                    "or a hub id either; see `perjax models list`)")


def check_settings(config, *, trains: bool) -> None:
  """Raises a ConfigError naming the first invalid setting. Training settings are checked only
  when the run trains (`trains`), so a zero-shot config need not carry sensible ones."""
  if trains:
    for key in ("steps", "batch_size", "accum", "checkpoint_every", "log_every", "seq_len"):
      _positive_int(config, f"train.{key}")
    if "task_steps" in config.train:
      _positive_int(config, "train.task_steps", minimum=0)
    _check_schedule(config)
    _check_budget(config)
    lr = config.train.lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) \
        or lr <= 0:
      raise ConfigError(f"train.lr must be a finite positive number, got {lr!r}")
    _check_optimizer(config)
  if trains and config.get("mesh", ""):  # imports jax only when set
    import jax
    from perjax import sharding
    if not isinstance(config.mesh, str):
      raise ConfigError(f"mesh must be a string such as 'data=2,fsdp=4', got {config.mesh!r}")
    sharding.parse_mesh(config.mesh, jax.device_count())
  if "loss_chunk" in config:
    _positive_int(config, "loss_chunk", minimum=0)
  if config.get("attention", "default") != "default":  # imports jax only when set
    from perjax.training.model_options import check_attention
    check_attention(config.attention, config.dtype)
  _positive_int(config, "eval.batch_size")
  _positive_int(config, "eval.max_new_tokens")
  if "num_beams" in config.eval:
    _positive_int(config, "eval.num_beams")
  if not isinstance(config.eval.get("gold_likelihood", True), bool):
    raise ConfigError(f"eval.gold_likelihood must be true or false, got "
                      f"{config.eval.gold_likelihood!r}")
  if "max_prompt_tokens" in config.eval:
    _positive_int(config, "eval.max_prompt_tokens", minimum=0)
  for key in ("data.max_train", "data.max_test"):
    _positive_int(config, key, minimum=0)
  if config.dtype not in _DTYPES:
    raise ConfigError(f"dtype must be one of {list(_DTYPES)}, got {config.dtype!r}")
  check_model(config.model, "gguf-decoder", "model")
  _check_log_and_init(config, trains)
  check_model(config.encoder, "encoder", "encoder")


def _check_schedule(config) -> None:
  from perjax.training.optim import SCHEDULES
  schedule = config.train.get("schedule", "constant")
  if schedule not in SCHEDULES:
    raise ConfigError(f"train.schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
  if "warmup" in config.train:
    _positive_int(config, "train.warmup", minimum=0)
    stages = [config.train.steps, config.train.get("task_steps", 0) or config.train.steps]
    if config.train.warmup >= min(stages):
      raise ConfigError(f"train.warmup ({config.train.warmup}) must be below the steps of every "
                        f"training stage ({min(stages)})")


EARLY_STOP_STAGES = ("task_stage", "train_split")


def _check_budget(config) -> None:
  """train.max_passes and the early-stopping fields (configs from before them lack them)."""
  if "max_passes" in config.train:
    _non_negative_number(config, "train.max_passes")
  if "early_stop_fraction" not in config.train:
    return
  fraction = config.train.early_stop_fraction
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or \
      not 0 <= fraction < 1:
    raise ConfigError(f"train.early_stop_fraction must be in [0, 1) (0: off), got {fraction!r}")
  _positive_int(config, "train.early_stop_every")
  _positive_int(config, "train.early_stop_patience")
  if config.train.early_stop_stages not in EARLY_STOP_STAGES:
    raise ConfigError(f"train.early_stop_stages must be one of {list(EARLY_STOP_STAGES)}, got "
                      f"{config.train.early_stop_stages!r}")


def _check_optimizer(config) -> None:
  from perjax.training.optim import make_optimizer  # registers the optimizers
  name = config.train.optimizer
  if name not in OPTIMIZERS:
    raise ConfigError(f"train.optimizer must be one of {OPTIMIZERS.names()}, got {name!r}")
  for key in ("weight_decay", "grad_clip"):
    if key in config.train:  # a config from before the field keeps its default, 0
      _non_negative_number(config, f"train.{key}")
  # what the optimizer itself refuses (adam has no weight decay); building one computes nothing
  make_optimizer(name, config.train.lr, weight_decay=config.train.get("weight_decay", 0.0),
                 grad_clip=config.train.get("grad_clip", 0.0))


def _non_negative_number(config, dotted: str) -> None:
  value = _field(config, dotted)
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
      or value < 0:
    raise ConfigError(f"{dotted} must be a finite number >= 0 (0: off), got {value!r}")


def _check_log_and_init(config, trains: bool) -> None:
  if "log" in config:
    from perjax.tracking import check_wandb
    check_wandb(config.log.wandb)
  adapter = config.init.adapter if "init" in config else ""
  if adapter:
    if not trains:
      raise ConfigError(f"init.adapter is set, but method {config.method!r} trains no personal "
                        "parameters")
    path = Path(adapter).expanduser()
    if not ((path / "adapter_config.json").is_file() or (path / "personal.json").is_file()):
      raise ConfigError(f"init.adapter {adapter!r} is neither a peft adapter folder "
                        "(adapter_config.json) nor a perjax group folder (personal.json)")
