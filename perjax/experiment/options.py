"""Where plugins find their options in a config, and the check that a run can start.

A method's options are `config.methods.<name>`, a granularity's `config.granularities.<name>`
(both from the plugin's `defaults`). `check_run` is what `perjax sweep` (dry or not) runs on every
run before the first one starts, and what the runner runs before it touches the workdir.
"""
from perjax.errors import ConfigError
from perjax.method import Recipe, compose
from perjax.registry import GRANULARITIES, import_plugins


def method_options(config, name: str) -> dict:
  return config.methods[name].to_dict() if name in config.methods else {}


def granularity_options(config, name: str) -> dict:
  return config.granularities[name].to_dict() if name in config.granularities else {}


def check_run(config) -> Recipe:
  """The recipe of `config.method` at `config.granularity`, or a one-line ConfigError: an
  unknown method or granularity, a combination that does not compose, or a plugin whose option
  block the config lacks (its module was imported after the config was built)."""
  import_plugins(config.get("plugins", ()))
  grouping = GRANULARITIES.get(config.granularity)
  _require_block(config, "granularities", grouping)
  recipe = compose(config.method, grouping.granularity, lambda n: method_options(config, n))
  for method in recipe.methods:
    _require_block(config, "methods", method)
  return recipe


def _require_block(config, field: str, plugin) -> None:
  if plugin.defaults and plugin.name not in config[field]:
    raise ConfigError(f"config.{field} has no block {plugin.name!r}: name the module that "
                      "registers it in config.plugins")
