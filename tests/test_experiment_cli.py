"""`perjax run` and `perjax sweep` end to end on tiny-llama: determinism, resume, reports."""
import csv
import json

import pytest

from experiment_tiny import SPEC, TINY, cli_overrides
from perjax import experiment
from perjax.cli import main
from perjax.experiment import train as train_module


def test_run_twice_identical_and_skipped(tmp_path, capsys):
  args = cli_overrides({"method": "soft_prompt"})
  assert main(["run", SPEC, "--workdir", str(tmp_path / "a"), *args]) == 0
  assert main(["run", SPEC, "--workdir", str(tmp_path / "b"), *args]) == 0
  for f in ("metrics.json", "predictions.jsonl"):
    assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
  config = json.loads((tmp_path / "a" / "config.json").read_text())
  assert config["method"] == "soft_prompt" and config["train"]["steps"] == TINY["train.steps"]
  capsys.readouterr()
  assert main(["run", SPEC, "--workdir", str(tmp_path / "a"), *args]) == 0
  assert "finished already" in capsys.readouterr().err
  # the same workdir with another config is refused
  assert main(["run", SPEC, "--workdir", str(tmp_path / "a"), *args, "--config.seed=1"]) == 2
  assert main(["run", SPEC, "--workdir", str(tmp_path / "c"), "--config.lora.rnak=2"]) == 2


def test_interrupted_training_resumes_identically(tmp_path, monkeypatch):
  overrides = {**TINY, "method": "lora", "train.steps": 4}
  config = experiment.load_config(SPEC, overrides)
  experiment.train_and_evaluate(config, tmp_path / "whole")

  real = train_module.make_train_step

  def interrupted(*a, **k):  # a step function that dies after 3 steps
    step, calls = real(*a, **k), []

    def wrapped(*args):
      calls.append(1)
      if len(calls) > 3:
        raise KeyboardInterrupt
      return step(*args)
    return wrapped

  monkeypatch.setattr(train_module, "make_train_step", interrupted)
  with pytest.raises(KeyboardInterrupt):
    experiment.train_and_evaluate(config, tmp_path / "cut")
  assert not (tmp_path / "cut" / "metrics.json").exists()
  monkeypatch.setattr(train_module, "make_train_step", real)
  experiment.train_and_evaluate(config, tmp_path / "cut")  # resumes from step 2
  assert (tmp_path / "cut" / "metrics.json").read_bytes() == \
      (tmp_path / "whole" / "metrics.json").read_bytes()
  assert (tmp_path / "cut" / "predictions.jsonl").read_bytes() == \
      (tmp_path / "whole" / "predictions.jsonl").read_bytes()


SWEEP_CONFIG = """
import importlib.util
spec = importlib.util.spec_from_file_location("qs", {quickstart!r})
qs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qs)

def get_config(arg=None):
  return qs.get_config(arg)

def sweep(add):
  add(method="zero_shot", granularity="global")
  add(method="rag", granularity="user", **{{"rag.retriever": "recency"}})
  add(method="lora", granularity="persona")
"""


def test_sweep_writes_results_and_skips_finished(tmp_path, capsys):
  from experiment_tiny import QUICKSTART
  path = tmp_path / "tiny_sweep.py"
  path.write_text(SWEEP_CONFIG.format(quickstart=QUICKSTART))
  out = tmp_path / "sweep"
  args = ["sweep", f"{path}:smoke,model=tiny-llama", "--workdir", str(out), *cli_overrides()]
  assert main(args) == 0
  rows = list(csv.DictReader(open(out / "results.csv")))
  assert [(r["method"], r["granularity"]) for r in rows] == [
      ("zero_shot", "global"), ("rag", "user"), ("lora", "persona")]
  assert list(rows[0])[:3] == ["method", "granularity", "rag.retriever"]
  assert {"accuracy", "f1"} <= set(rows[0])
  assert (out / "results.md").read_text().startswith("| method | granularity |")
  assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
  names = sorted(p.name for p in out.iterdir() if p.is_dir())
  assert "method=rag,granularity=user,rag.retriever=recency" in names
  capsys.readouterr()
  assert main(args) == 0  # every run is found finished
  assert capsys.readouterr().err.count("finished already") == 3
