"""Experiment configs: `file.py:args` parsing, locking, typed `--config.` overrides."""
import pytest

from experiment_tiny import QUICKSTART
from perjax import experiment
from perjax.cli import build_parser
from perjax.errors import ConfigError


def test_parse_arg_types_and_flags():
  arg = experiment.parse_arg("smoke,steps=7,lr=0.5,name=x", smoke=False, steps=1, lr=1.0,
                             name="a", other=True)
  assert (arg.smoke, arg.steps, arg.lr, arg.name, arg.other) == (True, 7, 0.5, "x", True)
  assert experiment.parse_arg(None, smoke=False).smoke is False
  with pytest.raises(ConfigError, match="unknown config argument 'smok'; did you mean 'smoke'"):
    experiment.parse_arg("smok", smoke=False)


def test_config_file_args_and_smoke():
  full = experiment.load_config(QUICKSTART)
  smoke = experiment.load_config(QUICKSTART + ":smoke,method=lora,granularity=persona")
  assert (smoke.method, smoke.granularity) == ("lora", "persona")
  assert smoke.train.steps < full.train.steps and full.method == "zero_shot"


def test_locked_and_typed_overrides():
  c = experiment.load_config(QUICKSTART, {"train.steps": "5", "train.lr": "1e-2",
                                          "prompt.chat": "false", "methods.rag.retriever": "dense",
                                          "methods.lora.rank": 2, "train.lr": 1})
  assert (c.train.steps, c.train.lr, c.prompt.chat, c.methods.rag.retriever,
          c.methods.lora.rank) == (5, 1.0, False, "dense", 2)
  assert isinstance(c.train.lr, float)
  with pytest.raises(ConfigError, match="unknown config key 'train.stpes'; did you mean "
                     "'train.steps'"):
    experiment.override(c, "train.stpes", "3")
  with pytest.raises(ConfigError, match="cannot parse 'many' as int"):
    experiment.override(c, "train.steps", "many")
  with pytest.raises(ConfigError, match="is a block"):
    experiment.override(c, "train", "3")
  with pytest.raises(AttributeError):  # locked: a typo in code fails too
    c.train.stpes = 3


def test_plugin_option_blocks_have_their_own_namespace():
  c = experiment.defaults()
  assert c.methods.rag.k == 4 and c.methods.lora.rank == 8
  assert c.granularities.persona.clusters == 4 and "persona" not in c and "rag" not in c
  c = experiment.load_config(QUICKSTART, {"methods.rag.k": "2",
                                          "granularities.persona.clusters": "3"})
  assert (c.methods.rag.k, c.granularities.persona.clusters) == (2, 3)


def test_cli_collects_overrides():
  args = build_parser().parse_args(
      ["run", "x.py:smoke", "--config.train.steps=3", "--workdir", "/tmp/w", "--config.methods.lora.rank",
       "2"])
  assert args.config == "x.py:smoke" and args.workdir == "/tmp/w"
  assert args.overrides == {"train.steps": "3", "methods.lora.rank": "2"}
