"""Experiment configs: one file per experiment, big_vision style.

A config file defines `get_config(arg=None)`, which parses `file.py:key=value,...` with
`parse_arg`, starts from `defaults()` and returns a `ConfigDict`. `load` then imports the modules
named in `config.plugins` (methods or granularities defined outside the repository), adds the
option blocks of every registered plugin (`config.methods.<name>`, `config.granularities.<name>`)
and locks the config, so a typo in an override fails instead of adding a field;
`--config.a.b=v` overrides parse `v` with the type of the existing field. An optional
`sweep(add)` (or `sweep(add, arg)`) calls `add(**overrides)` once per run of a sweep.
"""
import ast
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any, Mapping

import ml_collections

from perjax.errors import ConfigError
from perjax.registry import GRANULARITIES, METHODS, import_plugins, suggest

ConfigDict = ml_collections.ConfigDict

# train.max_passes' default: passes over its own examples a personal row may get (0: no budget;
# the stage's `steps` decide). To be chosen on dev across tasks (issue 28).
MAX_PASSES = 0.0


def defaults(plugins: tuple[str, ...] = ()) -> ConfigDict:
  """Every field an experiment has; config files change the ones they need. `plugins` are
  imported first, so the config file can set their options too."""
  import_plugins(plugins)
  c = ConfigDict()
  c.plugins = list(plugins)  # modules (names on sys.path, or .py paths) that register plugins
  c.seed = 0
  c.model = "smollm2-135m-instruct"  # a zoo name, a .gguf / HF folder path, or tiny-llama
  c.dtype = "float32"
  c.unroll_layers = False  # True: faster training steps on CPU, longer compilation
  # training memory: recompute layer activations in the backward pass; LM loss from the hidden
  # states in chunks of this many rows (0: the whole [B*T, V] logits at once)
  c.remat_layers = False
  c.loss_chunk = 0
  # attention without a KV cache (training, scoring): default, xla or cudnn (NVIDIA GPUs,
  # bfloat16; models/llama.py ATTENTION_KERNELS)
  c.attention = "default"
  # the training step's device mesh over every device (runs that train only), e.g.
  # "data=2,fsdp=4" (axes data, fsdp, tensor, groups; perjax/sharding.py); "": data parallel
  # over every local device (perjax/training/placement.py). Placement only: the run's results and
  # its workdir do not depend on it, so a run resumes on another mesh.
  c.mesh = ""
  c.encoder = "all-minilm-l6-v2"  # dense retrieval and persona clustering
  c.method = "zero_shot"  # one registered method, or several joined by '+' (rag+ia3)
  c.granularity = "user"
  # sample_seed draws the max_train / max_test subsets: fixed apart from `seed`, so runs with
  # several seeds score the same examples (paired statistics need that)
  c.data = ConfigDict(dict(name="synthetic", params={}, max_train=0, max_test=0, sample_seed=0))
  c.prompt = ConfigDict(dict(chat=True, system="", suffix=""))
  # on: what trains the personal rows (experiment/protocol.py): train_split, own_history, both;
  # task_steps: steps of the task stage that comes first under own_history (0: `steps`)
  # schedule: the learning rate over a stage's steps, after `warmup` linear warm-up steps:
  # constant, linear (decay to 0) or cosine (decay to 0); each group's row follows its own count
  # optimizer: sgd, adam or adamw; weight_decay: decoupled, as AdamW's (adamw and sgd; 0: none);
  # grad_clip: each group's gradient clipped to this global norm (0: no clipping)
  # log_every: steps between fetches of the step metrics from the device (every step's loss is
  # logged either way; fewer fetches keep the device busy)
  # max_passes: a stage runs at most this many passes over its examples, so a personal row sees
  # its own examples at most that often (training/budget.py; 0: no budget, `steps` decides)
  # early_stop_fraction: of a stage's examples held out to stop it by their loss, measured every
  # early_stop_every steps, after early_stop_patience evaluations without improvement, keeping
  # the best step (training/early_stopping.py; 0: off); early_stop_stages: which stages, the
  # task stage of own_history ("task_stage") or also a train_split run's stage ("train_split")
  c.train = ConfigDict(dict(steps=100, batch_size=8, accum=1, seq_len=128, optimizer="adam",
                            lr=1e-3, weight_decay=0.0, grad_clip=0.0, checkpoint_every=50,
                            log_every=10, on="train_split", task_steps=0, schedule="constant",
                            warmup=0, max_passes=MAX_PASSES, early_stop_fraction=0.0,
                            early_stop_every=10, early_stop_patience=3,
                            early_stop_stages="task_stage"))
  # max_prompt_tokens: prompts are cut to it (0: to the model's context less the answer)
  # num_beams: beam search for generated answers (1: greedy)
  # gold_likelihood: generation and label tasks also score the gold target's log-likelihood
  # under the final prompt and parameters (gold_nll, gold_ppl; one forward pass per example)
  c.eval = ConfigDict(dict(split="test", batch_size=32, max_new_tokens=8, max_prompt_tokens=0,
                           num_beams=1, gold_likelihood=True))
  # generate: greedy text mapped onto the labels; label_likelihood: the most likely label;
  # label_median: the median of the label distribution (numeric labels; least expected MAE);
  # auto: label_likelihood for a task with a label set, else generate
  c.predict = ConfigDict(dict(mode="generate"))
  # tensorboard: event files in WORKDIR/tensorboard; wandb: a W&B project name (optional extra)
  c.log = ConfigDict(dict(tensorboard=True, wandb=""))
  # adapter: a peft LoRA folder or a perjax group folder every personal row starts from
  c.init = ConfigDict(dict(adapter=""))
  # Options live in their own namespaces (config.methods.rag.k,
  # config.granularities.persona.clusters), so no plugin name can clash with a core field.
  c.methods = ConfigDict()
  c.granularities = ConfigDict()
  add_option_blocks(c)
  return c


def add_option_blocks(config: ConfigDict) -> None:
  """Adds the option block of every registered method and granularity with options that
  `config` lacks (one registered by a plugin imported after `defaults()`)."""
  for field, registry in (("methods", METHODS), ("granularities", GRANULARITIES)):
    blocks = config[field]
    for name, plugin in registry.items():
      if plugin.defaults and name not in blocks:
        blocks[name] = dict(plugin.defaults)


def _parse_value(text: str, like: Any):
  """`text` as a value of the type of `like` (the field's current value)."""
  if isinstance(like, bool):
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
      return True
    if low in ("0", "false", "no", "off"):
      return False
    raise ValueError(f"not a boolean: {text!r}")
  if isinstance(like, int):
    return int(text)
  if isinstance(like, float):
    return float(text)
  if isinstance(like, str):
    return text
  try:  # tuples, lists, dicts; a None field takes a literal, or else the text itself
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if isinstance(like, (list, tuple)):  # a,b -> [a, b] (--config.plugins=my.mod,other)
      return type(like)(t.strip() for t in text.split(",") if t.strip())
    if like is None:
      return text
    raise
  if isinstance(like, (list, tuple)) and isinstance(value, (list, tuple)):
    return type(like)(value)
  return value


def parse_arg(arg: str | None, **spec) -> ConfigDict:
  """`"smoke,method=rag"` -> ConfigDict; `spec` gives the keys, defaults and types. A bare key
  sets a boolean to True."""
  out = ConfigDict(spec)
  for token in filter(None, (arg or "").split(",")):
    key, eq, value = token.partition("=")
    key = key.strip()
    if key not in spec:
      raise ConfigError(f"unknown config argument {key!r}{suggest(key, spec)}")
    try:
      out[key] = _parse_value(value, spec[key]) if eq else True
    except ValueError as e:
      raise ConfigError(f"config argument {key}: {e}") from None
  return out


def flatten(tree, prefix: str = "") -> dict[str, Any]:
  """{dotted key: leaf value} of a nested dict or ConfigDict."""
  out = {}
  for k, v in tree.items():
    if isinstance(v, (dict, ConfigDict)):
      out.update(flatten(v, prefix + k + "."))
    else:
      out[prefix + k] = v
  return out


def override(config: ConfigDict, key: str, value: Any) -> None:
  """Sets the dotted `key`; a string value is parsed with the type of the existing field."""
  path = key.split(".")
  node = config
  for i, part in enumerate(path):
    if not isinstance(node, ConfigDict) or part not in node:
      raise ConfigError(f"unknown config key {key!r}"
                        f"{suggest(key, flatten(config), list_known=False)}")
    if i < len(path) - 1:
      node = node[part]
  old = node[path[-1]]
  if isinstance(old, ConfigDict):
    raise ConfigError(f"config key {key!r} is a block; set one of its fields")
  if isinstance(value, str) and not isinstance(old, str):
    try:
      value = _parse_value(value, old)
    except (ValueError, SyntaxError) as e:
      raise ConfigError(f"--config.{key}: cannot parse {value!r} as {type(old).__name__} "
                        f"({e})") from None
  elif isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  with node.unlocked():  # locked only forbids new keys; the type check below stays ours
    if old is not None and not isinstance(value, type(old)):
      raise ConfigError(f"config key {key!r} holds a {type(old).__name__}, got {value!r}")
    node[path[-1]] = value


def load_module(path: str):
  file = Path(path)
  if not file.is_file():
    raise ConfigError(f"config file {path!r} not found")
  # A stable module name per file: the plugins it registers replace themselves when a sweep
  # loads it again, instead of clashing.
  digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:8]
  spec = importlib.util.spec_from_file_location(f"perjax_config_{file.stem}_{digest}", file)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ConfigError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {path} defines no get_config(arg=None)")
  return module


def split_spec(spec: str) -> tuple[str, str | None]:
  """`file.py:args` -> (file, args); a plain path has no args."""
  path, colon, arg = spec.partition(":")
  return path, (arg if colon else None)


def load(spec: str, overrides: Mapping[str, Any] | None = None) -> ConfigDict:
  """The locked config of `CONFIG[:ARGS]` with `overrides` ({dotted key: value}) applied.

  The plugins (the config's, or `overrides["plugins"]`) are imported before the option blocks
  are completed and the other overrides applied, so `--config.methods.<plugin>.x=v` works."""
  path, arg = split_spec(spec)
  config = load_module(path).get_config(arg)
  if not isinstance(config, ConfigDict):
    raise ConfigError(f"{path}: get_config must return an ml_collections.ConfigDict")
  overrides = dict(overrides or {})
  if "plugins" in overrides:
    override(config, "plugins", overrides.pop("plugins"))
  import_plugins(config.get("plugins", ()))
  add_option_blocks(config)
  config.lock()
  for key, value in overrides.items():
    override(config, key, value)
  return config


def to_json(config: ConfigDict) -> str:
  """The resolved config as canonical JSON (sorted keys), as written to DIR/config.json."""
  return json.dumps(config.to_dict(), sort_keys=True, indent=1)
