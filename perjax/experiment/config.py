"""Experiment configs: one file per experiment, big_vision style.

A config file defines `get_config(arg=None)`, which parses `file.py:key=value,...` with
`parse_arg`, starts from `defaults()` and returns a `ConfigDict`. `load` locks it, so a typo in an
override fails instead of adding a field; `--config.a.b=v` overrides parse `v` with the type of
the existing field. An optional `sweep(add)` (or `sweep(add, arg)`) calls `add(**overrides)` once
per run of a sweep.
"""
import ast
import difflib
import importlib.util
import json
from pathlib import Path
from typing import Any, Mapping

import ml_collections

from perjax.errors import ConfigError
from perjax.registry import GRANULARITIES, METHODS, load_plugins

ConfigDict = ml_collections.ConfigDict


def defaults() -> ConfigDict:
  """Every field an experiment has; config files change the ones they need."""
  load_plugins()
  c = ConfigDict()
  c.seed = 0
  c.model = "smollm2-135m-instruct"  # a zoo name, a .gguf / HF folder path, or tiny-llama
  c.dtype = "float32"
  c.unroll_layers = False  # True: faster training steps on CPU, longer compilation
  c.encoder = "all-minilm-l6-v2"  # dense retrieval and persona clustering
  c.method = "zero_shot"  # one registered method, or several joined by '+' (rag+lora)
  c.granularity = "user"
  c.data = ConfigDict(dict(name="synthetic", params={}, max_train=0, max_test=0))
  c.prompt = ConfigDict(dict(chat=True, system="", suffix=""))
  c.train = ConfigDict(dict(steps=100, batch_size=8, accum=1, seq_len=128, optimizer="adam",
                            lr=1e-3, checkpoint_every=50))
  c.eval = ConfigDict(dict(split="test", batch_size=32, max_new_tokens=8))
  # generate: greedy text mapped onto the labels; label_likelihood: the most likely label
  c.predict = ConfigDict(dict(mode="generate"))
  # Each plugin's options live in a block named after it (config.rag.k, config.persona.clusters).
  for registry in (METHODS, GRANULARITIES):
    for name, plugin in registry.items():
      if plugin.defaults:
        if name in c:
          raise ConfigError(f"plugin {name!r} clashes with the config field of the same name")
        c[name] = dict(plugin.defaults)
  return c


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
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if like is None:
      return text
    raise


def parse_arg(arg: str | None, **spec) -> ConfigDict:
  """`"smoke,method=lora"` -> ConfigDict; `spec` gives the keys, defaults and types. A bare key
  sets a boolean to True."""
  out = ConfigDict(spec)
  for token in filter(None, (arg or "").split(",")):
    key, eq, value = token.partition("=")
    key = key.strip()
    if key not in spec:
      near = difflib.get_close_matches(key, list(spec), n=1)
      raise ConfigError(f"unknown config argument {key!r}" +
                        (f"; did you mean {near[0]!r}?" if near else f"; known: {sorted(spec)}"))
    try:
      out[key] = _parse_value(value, spec[key]) if eq else True
    except ValueError as e:
      raise ConfigError(f"config argument {key}: {e}") from None
  return out


def flat_keys(config: ConfigDict, prefix: str = "") -> list[str]:
  keys = []
  for k, v in config.items():
    keys.append(prefix + k)
    if isinstance(v, ConfigDict):
      keys += flat_keys(v, prefix + k + ".")
  return keys


def override(config: ConfigDict, key: str, value: Any) -> None:
  """Sets the dotted `key`; a string value is parsed with the type of the existing field."""
  path = key.split(".")
  node = config
  for i, part in enumerate(path):
    if not isinstance(node, ConfigDict) or part not in node:
      near = difflib.get_close_matches(key, flat_keys(config), n=1, cutoff=0.6)
      raise ConfigError(f"unknown config key {key!r}" +
                        (f"; did you mean {near[0]!r}?" if near else ""))
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
  spec = importlib.util.spec_from_file_location(f"perjax_config_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {path} defines no get_config(arg=None)")
  return module


def split_spec(spec: str) -> tuple[str, str | None]:
  """`file.py:args` -> (file, args); a plain path has no args."""
  path, colon, arg = spec.partition(":")
  return path, (arg if colon else None)


def load(spec: str, overrides: Mapping[str, Any] | None = None) -> ConfigDict:
  """The locked config of `CONFIG[:ARGS]` with `overrides` ({dotted key: value}) applied."""
  path, arg = split_spec(spec)
  config = load_module(path).get_config(arg)
  if not isinstance(config, ConfigDict):
    raise ConfigError(f"{path}: get_config must return an ml_collections.ConfigDict")
  config.lock()
  for key, value in (overrides or {}).items():
    override(config, key, value)
  return config


def to_json(config: ConfigDict) -> str:
  """The resolved config as canonical JSON (sorted keys), as written to DIR/config.json."""
  return json.dumps(config.to_dict(), sort_keys=True, indent=1)
