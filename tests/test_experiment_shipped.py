"""The shipped experiment configs load (plain and :smoke) and list their sweeps."""
from pathlib import Path

import pytest

from perjax import experiment

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
