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
