"""`perjax sweep --seeds N`: per-seed run folders, statistics columns, significance marks
against zero_shot, trivial baselines as rows, and per_user.csv in every run."""
import csv
import json

import pytest

from experiment_tiny import QUICKSTART, cli_overrides
from perjax.cli import main
from perjax.data import load_dataset
from perjax.experiment import config as cfg
from perjax.reporting.seeded import seeded_rows

SWEEP = f"""exec(open({QUICKSTART!r}).read())

def sweep(add):
  add(method="zero_shot", granularity="global")
  add(method="rag", granularity="user")
"""


def _fake_run(folder, examples, right_every, gold_logprob=None, cost=None):
  """A finished run's predictions.jsonl: right on every `right_every`-th example, else wrong;
  each gold target of 2 tokens with `gold_logprob` where given; `cost` its metrics.json."""
  folder.mkdir(parents=True)
  with open(folder / "predictions.jsonl", "w") as f:
    for i, e in enumerate(examples):
      pred = e.target if i % right_every == 0 else ("red" if e.target != "red" else "blue")
      gold = {} if gold_logprob is None else {"gold_logprob": gold_logprob - 0.1 * (i % 3),
                                              "gold_tokens": 2}
      f.write(json.dumps({"id": e.id, "user_id": e.user_id, "prediction": pred,
                          "target": e.target, **gold}) + "\n")
  if cost is not None:
    (folder / "metrics.json").write_text(json.dumps(cost))


def test_seeded_rows_mark_a_significant_difference(tmp_path):
  config = cfg.load(f"{QUICKSTART}:smoke", {})
  task = load_dataset(config.data.name, **config.data.params.to_dict())
  examples = task.splits[config.eval.split]
  cells = []
  for method, granularity, right_every in (("zero_shot", "global", 4), ("rag", "user", 1),
                                           ("rag", "global", 4)):
    dirs = [tmp_path / f"{method}-{granularity}-{s}" for s in range(2)]
    for d in dirs:
      _fake_run(d, examples, right_every)
    cells.append(({"run": method, "method": method, "granularity": granularity}, dirs))
  rows, marks = seeded_rows(cells, config, n=300)
  by_method = {(r["method"], r["granularity"]): r for r in rows}
  zero, rag, same = (by_method[k] for k in (("zero_shot", "global"), ("rag", "user"),
                                            ("rag", "global")))
  assert zero["accuracy_mean"] == same["accuracy_mean"] < rag["accuracy_mean"] == 1.0
  assert rag["accuracy_p"] < 0.05 and same["accuracy_p"] == 1.0 and zero["accuracy_p"] == ""
  assert (rows.index(rag), "accuracy_mean") in marks
  assert (rows.index(same), "accuracy_mean") not in marks
  assert {"baseline:global_majority", "baseline:user_majority"} <= {r["method"] for r in rows}
  # against the trivial personal baseline (right on about half): the always-right cell beats it;
  # baseline rows carry no such test
  user_majority = by_method[("baseline:user_majority", "user")]
  assert user_majority["accuracy_mean"] < 0.6
  assert rag["accuracy_p_user"] < 0.05 and (rows.index(rag), "accuracy_p_user") in marks
  assert "accuracy_p_user" in zero and "accuracy_p_user" not in user_majority
  assert all(r["seeds"] == (1 if r["method"].startswith("baseline") else 2) for r in rows)
  per_user = list(csv.DictReader(open(tmp_path / "rag-user-0" / "per_user.csv")))
  assert sum(int(r["examples"]) for r in per_user) == len(examples)
  assert {float(r["accuracy"]) for r in per_user} == {1.0}


def test_seeded_rows_test_gold_perplexity_and_report_cost(tmp_path):
  """gold_ppl, lower being better: a cell whose gold targets are likelier is marked; each cell's
  row gives its runs' mean cost; the trivial baselines have no gold likelihood."""
  config = cfg.load(f"{QUICKSTART}:smoke", {})
  task = load_dataset(config.data.name, **config.data.params.to_dict())
  examples = task.splits[config.eval.split]
  cells = []
  for method, logprob, seconds in (("zero_shot", -6.0, (1.0, 1.0)), ("lora", -2.0, (10.0, 20.0))):
    dirs = [tmp_path / f"{method}-{s}" for s in range(2)]
    for d, wall in zip(dirs, seconds):
      _fake_run(d, examples, 2, logprob - 0.2 * (d.name[-1] == "1"),
                {"accuracy": 0.5, "wall_seconds": wall, "train_steps": 4,
                 "train_examples_seen": 32})
    cells.append(({"run": method, "method": method, "granularity": "user"}, dirs))
  rows, marks = seeded_rows(cells, config, n=200)
  zero, lora = rows[0], rows[1]
  nll = lambda lp: -(sum(lp - 0.1 * (i % 3) for i in range(len(examples))) / (2 * len(examples)))
  assert zero["gold_nll_mean"] == pytest.approx((nll(-6.0) + nll(-6.2)) / 2)
  assert lora["gold_ppl_mean"] < zero["gold_ppl_mean"]
  assert lora["gold_ppl_p"] < 0.05 and (1, "gold_ppl_mean") in marks
  assert lora["wall_seconds"] == 15.0 and lora["train_examples_seen"] == 32
  assert all("gold_nll_mean" not in r for r in rows if r["method"].startswith("baseline:"))
  per_user = list(csv.DictReader(open(tmp_path / "lora-0" / "per_user.csv")))
  assert "gold_ppl" in per_user[0]


def test_sweep_with_seeds_end_to_end(tmp_path):
  path = tmp_path / "two_cells.py"
  path.write_text(SWEEP)
  out = tmp_path / "sweep"
  args = ["sweep", f"{path}:smoke,model=tiny-llama", "--workdir", str(out), "--seeds", "2",
          *cli_overrides({"data.max_test": 0})]
  assert main(args) == 0
  names = sorted(p.name for p in out.iterdir() if p.is_dir())
  assert names == [f"method={m},granularity={g},seed={s}" for m, g in
                   (("rag", "user"), ("zero_shot", "global")) for s in (0, 1)]
  assert all((out / n / "per_user.csv").is_file() for n in names)
  rows = list(csv.DictReader(open(out / "results.csv")))
  for m in ("accuracy", "f1", "gold_nll", "gold_ppl"):
    assert {f"{m}_mean", f"{m}_std", f"{m}_ci_low", f"{m}_ci_high"} <= set(rows[0])
  assert float(rows[0]["wall_seconds"]) > 0 and rows[0]["train_examples_seen"] == "0"
  assert rows[0]["method"] == "zero_shot" and rows[0]["seeds"] == "2"
  assert any(r["method"] == "baseline:user_majority" for r in rows)
  table = (out / "results.md").read_text()
  starred = {r["method"] + "@" + r["granularity"] for r in rows
             if r.get("accuracy_p") and float(r["accuracy_p"]) < 0.05}
  assert table.count("*") >= len(starred)


def test_a_cell_may_cap_its_seeds():
  """`add(..., seeds=1)`: a cell without randomness runs once, the others N times; the cap is
  not a config key and not part of the run's name."""
  from perjax.experiment.sweep import _config_keys, with_seeds
  import ml_collections
  config = ml_collections.ConfigDict({"seed": 0})
  checked = [("a", {"method": "zero_shot", "seeds": 1}, config), ("b", {"method": "lora"}, config)]
  runs = with_seeds(checked, 3)
  assert [name for name, _, _ in runs] == ["a,seed=0", "b,seed=0", "b,seed=1", "b,seed=2"]
  assert [c.seed for _, _, c in runs] == [0, 0, 1, 2]
  assert _config_keys({"method": "zero_shot", "seeds": 1}) == {"method": "zero_shot"}


def test_a_run_name_parses_into_its_cell_and_seed():
  from perjax.experiment.run_name import RunName
  assert RunName.parse("method=rag,granularity=user,seed=12") == \
      RunName("method=rag,granularity=user", 12)
  assert RunName.parse("method=rag,granularity=user") == RunName("method=rag,granularity=user")
  assert RunName.parse("method=rag,seed=x").seed is None  # not a seed's run
  assert RunName("method=lora", 3).format() == "method=lora,seed=3" == str(RunName.parse(
      "method=lora,seed=3"))
