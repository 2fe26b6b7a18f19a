"""The shipped experiment configs load (plain and :smoke) and list their sweeps."""
from pathlib import Path

import pytest

from perjax import experiment
from perjax.errors import ConfigError

EXPERIMENTS = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "experiments")
                     .glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: Path(p).stem)
def test_config_loads_and_smoke_shrinks(path):
  full, smoke = experiment.load_config(path), experiment.load_config(path + ":smoke")
  assert smoke.train.steps <= full.train.steps
  assert experiment.sweep_runs(path)


def test_movielens_tagging_compares_user_and_global_by_label_likelihood():
  path = next(p for p in EXPERIMENTS if p.endswith("movielens_tagging.py"))
  assert experiment.load_config(path).predict.mode == "label_likelihood"
  runs = {(o["method"], o["granularity"]) for _, o in experiment.sweep_runs(path)}
  for method in ("rag", "lora"):
    assert {(method, "user"), (method, "global")} <= runs


def test_movielens_rating_parts_give_their_cells():
  path = next(p for p in EXPERIMENTS if p.endswith("movielens_rating.py"))
  cells = lambda part: [o for _, o in experiment.sweep_runs(f"{path}:{part}")]
  rounded = cells("dev,part=rounded")
  assert len(rounded) == 1 and rounded[0]["methods.peer_stats.round_estimate"] is True
  assert cells("dev,part=longer")[0]["train.steps"] == 256
  assert cells("dev,part=all-projections")[0]["methods.lora.targets"] == "q,k,v,o,gate,up,down"
  on_test = cells("part=rounded")  # test parts carry the zero_shot baseline
  assert on_test[0]["method"] == "zero_shot" and len(on_test) == 2
  oppu = {(o["method"], o["granularity"]) for o in cells("part=oppu")}
  assert oppu == {("zero_shot", "global"), ("rag", "persona"), ("rag+lora@global+lora", "user")}


@pytest.mark.parametrize("name, arg, message", [
    ("movielens_rating.py", "dev,part=estimat", "unknown part 'estimat'; did you mean 'estimate'"),
    ("movielens_rating.py", "prat=bias", "unknown config argument 'prat'; did you mean 'part'"),
    ("dsp_preferences.py", "smok", "unknown config argument 'smok'; did you mean 'smoke'")])
def test_a_mistyped_sweep_argument_is_one_config_error(name, arg, message):
  # the sweep parses its argument: a typo fails instead of silently running the whole sweep
  path = next(p for p in EXPERIMENTS if p.endswith(name))
  with pytest.raises(ConfigError, match=message):
    experiment.sweep_runs(f"{path}:{arg}")


def test_movielens_rating_dev_parts_compare_on_dev_only():
  path = next(p for p in EXPERIMENTS if p.endswith("movielens_rating.py"))
  schedules = [o.get("train.schedule") for _, o in experiment.sweep_runs(f"{path}:dev,part=estimate")]
  assert schedules == [None, "cosine"]  # no baseline: the two schedules against each other
  peer = [o["method"] for _, o in experiment.sweep_runs(f"{path}:dev,part=peer")]
  assert peer == ["zero_shot", "peer_stats+lora"]
