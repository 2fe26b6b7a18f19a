"""`perjax run` and `perjax sweep` end to end on tiny-llama: determinism, resume, reports."""
import csv
import json

from experiment_tiny import SPEC, cli_overrides, dies_after, quickstart_sweep, same_run_outputs
from perjax.cli import main
from perjax.training import loop as train_module



def test_run_is_deterministic_resumes_and_skips(tmp_path, monkeypatch, capsys):
  args = cli_overrides({"method": "lora", "train.steps": 4})
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  assert main(["run", SPEC, "--workdir", a, *args]) == 0
  config = json.loads((tmp_path / "a" / "config.json").read_text())
  assert config["method"] == "lora" and config["train"]["steps"] == 4
  # the LaMP outputs file is written by LaMP tasks only (Task.write_outputs), not the synthetic
  assert not (tmp_path / "a" / "predictions.lamp.json").exists()

  # b: killed after 3 steps (checkpoint at step 2), then rerun: resumes, ends bit-identical to a
  real = train_module.make_train_step
  monkeypatch.setattr(train_module, "make_train_step", dies_after(3, real))
  assert main(["run", SPEC, "--workdir", b, *args]) == 130
  assert not (tmp_path / "b" / "metrics.json").exists()
  assert train_module.checkpoint.Checkpoints(b).latest_step() == 2
  monkeypatch.setattr(train_module, "make_train_step", real)
  assert main(["run", SPEC, "--workdir", b, *args]) == 0
  same_run_outputs(tmp_path / "a", tmp_path / "b")  # the wall time aside (cost.deterministic)

  capsys.readouterr()
  assert main(["run", SPEC, "--workdir", a, *args]) == 0
  assert "finished already" in capsys.readouterr().err
  # the same workdir with another config is refused; so is an unknown key
  assert main(["run", SPEC, "--workdir", a, *args, "--config.seed=1"]) == 2
  assert "differs in ['seed']" in capsys.readouterr().err
  assert main(["run", SPEC, "--workdir", str(tmp_path / "c"), "--config.methods.lora.rnak=2"]) == 2
  assert "did you mean 'methods.lora.rank'" in capsys.readouterr().err


def test_sweep_writes_results_and_skips_finished(tmp_path, capsys):
  path = tmp_path / "tiny_sweep.py"
  path.write_text(quickstart_sweep(
      'add(method="zero_shot", granularity="global")',
      'add(method="rag", granularity="user", **{"methods.rag.retriever": "recency"})',
      'add(method="lora", granularity="persona")'))
  out = tmp_path / "sweep"
  args = ["sweep", f"{path}:smoke,model=tiny-llama", "--workdir", str(out), *cli_overrides()]
  assert main(args) == 0
  rows = list(csv.DictReader(open(out / "results.csv")))
  assert [(r["method"], r["granularity"]) for r in rows] == [
      ("zero_shot", "global"), ("rag", "user"), ("lora", "persona")]
  assert list(rows[0])[:3] == ["method", "granularity", "methods.rag.retriever"]
  assert {"accuracy", "f1"} <= set(rows[0])
  assert (out / "results.md").read_text().startswith("| method | granularity |")
  assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
  names = sorted(p.name for p in out.iterdir() if p.is_dir())
  assert "method=rag,granularity=user,methods.rag.retriever=recency" in names
  capsys.readouterr()
  assert main(args) == 0  # every run is found finished
  assert capsys.readouterr().err.count("finished already") == 3


def test_failed_start_does_not_claim_the_workdir(tmp_path):
  bad = ["run", SPEC, "--workdir", str(tmp_path), *cli_overrides({"data.params.n_topics": 99})]
  assert main(bad) == 2  # the data set refuses 99 topics before anything is trained
  assert main(["run", SPEC, "--workdir", str(tmp_path), *cli_overrides()]) == 0
