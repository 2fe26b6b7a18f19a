"""The fault suite: every way we found to break a run ends either correctly or as a non-zero exit
with one line naming the problem; no traceback, no finished work lost. Tiny-llama runs, in this
process where one process is enough, in subprocesses where a second process or a kill is the
point (tests/fault_driver.py injects the faults)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiment_tiny import QUICKSTART, SPEC, cli_overrides, same_run_outputs, task_metrics
from perjax.cli import main
from perjax.training import loop as train_module

ROOT = Path(__file__).resolve().parents[1]
DRIVER = str(Path(__file__).with_name("fault_driver.py"))
ARGS = cli_overrides({"method": "lora", "train.steps": 6})  # checkpoints at steps 2, 4 and 6
OUTPUTS = ("metrics.json", "predictions.jsonl")


def one_line_error(err: str, command: str = "run") -> str:
  """The single `perjax COMMAND: error: ...` line of `err` (and no traceback)."""
  assert "Traceback" not in err, err
  lines = [l for l in err.splitlines() if l.startswith(f"perjax {command}: error:")]
  assert len(lines) == 1, err
  return lines[0]


def same_outputs(a: Path, b: Path) -> None:
  same_run_outputs(a, b)  # byte-identical predictions; metrics less the measured wall time


def spawn(fault: str, value, argv, log: Path) -> subprocess.Popen:
  """`perjax ARGV` in a subprocess with a fault (see fault_driver.py); output goes to `log`."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.Popen([sys.executable, DRIVER, fault, str(value), "--", *argv], cwd=ROOT,
                          env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def wait_for(predicate, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
  end = time.time() + timeout
  while not predicate():
    if proc.poll() is not None and not predicate():
      raise AssertionError(f"the subprocess ended first ({proc.returncode}): "
                           f"{log.read_text()[-2000:]}")
    assert time.time() < end, f"timed out; log: {log.read_text()[-2000:]}"
    time.sleep(0.1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
  """An uninterrupted lora run: every interrupted or damaged run must end byte-identical."""
  workdir = tmp_path_factory.mktemp("faults") / "reference"
  assert main(["run", SPEC, "--workdir", str(workdir), *ARGS]) == 0
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["4", "6"]
  return workdir


def interrupted_copy(reference: Path, to: Path) -> Path:
  """The reference run as it was before its evaluation: checkpoints only."""
  shutil.copytree(reference, to)
  for f in OUTPUTS:
    (to / f).unlink()
  return to


# -- settings and inputs checked before the workdir is touched ---------------------------------
@pytest.mark.parametrize("override,names", [
    ({"train.steps": 0}, "train.steps"), ({"train.steps": -3}, "train.steps"),
    ({"train.lr": "nan"}, "train.lr"), ({"train.checkpoint_every": 0}, "train.checkpoint_every"),
    ({"train.batch_size": 0}, "train.batch_size"), ({"train.seq_len": 0}, "train.seq_len"),
    ({"train.optimizer": "adamx"},
     "train.optimizer must be one of ['adam', 'adamw', 'sgd'], got 'adamx'"),
    ({"train.grad_clip": -1}, "train.grad_clip must be a finite number >= 0 (0: off), got -1"),
    ({"model": "smollm2-135m-instrct"}, "unknown model"),
    ({"encoder": "all-minilm-l6-v3"}, "encoder: unknown model")])
def test_nonsense_settings_stop_before_the_workdir(tmp_path, capsys, override, names):
  code = main(["run", SPEC, "--workdir", str(tmp_path / "w"),
               *cli_overrides({"method": "lora", **override})])
  assert code == 2 and names in one_line_error(capsys.readouterr().err)
  assert not (tmp_path / "w").exists()


def test_sweep_dry_run_refuses_an_unknown_optimizer(tmp_path, capsys):
  work = tmp_path / "qs"
  code = main(["sweep", SPEC, "--dry-run", "--workdir", str(work),
               *cli_overrides({"train.optimizer": "adamx"})])
  err = one_line_error(capsys.readouterr().err, "sweep")
  assert code == 2 and "train.optimizer must be one of ['adam', 'adamw', 'sgd'], got 'adamx'" in err
  assert not work.exists()


def test_config_file_with_a_syntax_error(tmp_path, capsys):
  path = tmp_path / "broken.py"
  path.write_text("def get_config(arg=None):\n  return (\n")
  assert main(["run", str(path), "--workdir", str(tmp_path / "w")]) == 2
  assert f"{path}:2: syntax error" in one_line_error(capsys.readouterr().err)


def test_workdir_that_is_a_file(tmp_path, capsys):
  (tmp_path / "f").write_text("not a folder")
  assert main(["run", SPEC, "--workdir", str(tmp_path / "f"), *ARGS]) == 2
  assert "is a file" in one_line_error(capsys.readouterr().err)
  sweep = ["sweep", QUICKSTART + ":smoke,model=tiny-llama", "--workdir", str(tmp_path / "f")]
  assert main([*sweep, *cli_overrides()]) == 2
  assert "is a file, or lies under a file" in one_line_error(capsys.readouterr().err, "sweep")


# -- one run per workdir -----------------------------------------------------------------------
@pytest.mark.slow
def test_second_config_racing_into_a_workdir_is_refused(tmp_path, capsys, reference):
  workdir, log = tmp_path / "race", tmp_path / "lora.log"
  lora = spawn("slow-steps", 0.3, ["run", SPEC, "--workdir", str(workdir), *ARGS], log)
  wait_for(lambda: (workdir / ".lock").exists(), lora, log)
  rag = ["run", SPEC, "--workdir", str(workdir), *ARGS, "--config.method=rag"]
  assert main(rag) == 2
  assert f"in use by pid {lora.pid}" in one_line_error(capsys.readouterr().err)
  assert lora.wait(timeout=300) == 0, log.read_text()
  # the workdir holds lora's config and lora's own results (those of an undisturbed run)
  assert json.loads((workdir / "config.json").read_text())["method"] == "lora"
  same_outputs(reference, workdir)
  assert not (workdir / ".lock").exists()
  assert main(rag) == 2  # and rag is never reported as finished with lora's numbers
  # (plugins registered by earlier tests in this process may add option blocks to the diff)
  assert re.search(r"differs in \[.*'method'[,\]]", one_line_error(capsys.readouterr().err))


@pytest.mark.slow
def test_two_sweeps_into_one_folder_share_the_runs(tmp_path, capsys):
  path = tmp_path / "two_runs.py"
  path.write_text(f"exec(open({QUICKSTART!r}).read())\n\ndef sweep(add):\n"
                  "  add(method='zero_shot', granularity='global')\n"
                  "  add(method='lora', granularity='user')\n")
  out, log = tmp_path / "sweep", tmp_path / "first.log"
  argv = ["sweep", f"{path}:smoke,model=tiny-llama", "--workdir", str(out), *cli_overrides()]
  first = spawn("plain", "-", argv, log)
  zero_shot = out / "method=zero_shot,granularity=global"
  wait_for(lambda: (zero_shot / ".lock").exists(), first, log)
  assert main(argv) == 0  # skips the run the first sweep holds, then waits for it
  err = capsys.readouterr().err
  assert f"{zero_shot}: run by pid {first.pid}" in err
  assert first.wait(timeout=300) == 0, log.read_text()
  table = (out / "results.csv").read_text()
  assert table.count("\n") == 3 and "zero_shot" in table and "lora" in table


# -- interrupted and damaged runs ----------------------------------------------------------------
@pytest.mark.slow
def test_kill_mid_step_resumes_identically(tmp_path, capsys, reference):
  workdir, log = tmp_path / "killed", tmp_path / "killed.log"
  run = spawn("slow-steps", 1.0, ["run", SPEC, "--workdir", str(workdir), *ARGS], log)
  wait_for(lambda: (workdir / "checkpoints" / "2").is_dir(), run, log)
  run.send_signal(signal.SIGKILL)
  assert run.wait() == -signal.SIGKILL
  assert (workdir / ".lock").exists() and not (workdir / "metrics.json").exists()
  assert main(["run", SPEC, "--workdir", str(workdir), *ARGS]) == 0
  assert f"taking over the lock of pid {run.pid}" in capsys.readouterr().err
  same_outputs(reference, workdir)


@pytest.mark.slow
def test_kill_mid_checkpoint_resumes_identically(tmp_path, reference):
  workdir, log = tmp_path / "killed", tmp_path / "killed.log"
  run = spawn("die-in-save", 4, ["run", SPEC, "--workdir", str(workdir), *ARGS], log)
  assert run.wait(timeout=300) == -signal.SIGKILL, log.read_text()
  steps = [p.name for p in (workdir / "checkpoints").iterdir()]
  assert "2" in steps and "4" not in steps  # step 4 was written, never committed
  assert main(["run", SPEC, "--workdir", str(workdir), *ARGS]) == 0
  same_outputs(reference, workdir)


@pytest.mark.parametrize("damage", ["no_metadata", "truncated", "both_steps"])
def test_damaged_checkpoint_is_set_aside(tmp_path, capsys, reference, damage):
  workdir = interrupted_copy(reference, tmp_path / "w")
  ckpt = workdir / "checkpoints"
  if damage in ("no_metadata", "both_steps"):
    (ckpt / "6" / "default" / "_METADATA").unlink()
  if damage in ("truncated", "both_steps"):
    step = "6" if damage == "truncated" else "4"
    largest = max((p for p in (ckpt / step).rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_size)
    largest.write_bytes(largest.read_bytes()[:10])
  assert main(["run", SPEC, "--workdir", str(workdir), *ARGS]) == 0
  err = capsys.readouterr().err
  assert "Traceback" not in err
  notes = [l for l in err.splitlines() if "could not be restored" in l]
  if damage == "both_steps":
    assert len(notes) == 2 and "training from scratch" in notes[1]
    assert (ckpt / "bad-4").is_dir()
  else:
    assert len(notes) == 1 and "resuming from step 4" in notes[0]
  assert (ckpt / "bad-6").is_dir() and "bad-6" in notes[0]
  same_outputs(reference, workdir)  # from step 4 or from scratch: the same deterministic run


def test_emptied_metrics_or_config(tmp_path, capsys, reference):
  workdir = tmp_path / "w"
  shutil.copytree(reference, workdir)
  (workdir / "metrics.json").write_text("")
  assert main(["run", SPEC, "--workdir", str(workdir), *ARGS]) == 0
  assert "metrics.json is damaged; evaluating the run again" in capsys.readouterr().err
  same_outputs(reference, workdir)
  (workdir / "config.json").write_text("")
  assert main(["run", SPEC, "--workdir", str(workdir), *ARGS]) == 2
  assert "config.json is damaged (empty)" in one_line_error(capsys.readouterr().err)


def test_read_only_workdir_fails_before_training(tmp_path, reference):
  workdir = interrupted_copy(reference, tmp_path / "w")
  shutil.rmtree(workdir / "checkpoints" / "6")  # interrupted: steps 5 and 6 still to train
  argv = ["run", SPEC, "--workdir", str(workdir), *ARGS]
  if os.geteuid() == 0:  # root writes anywhere unless it drops the capability to
    if not shutil.which("setpriv"):
      pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
  else:
    prefix = []
  for p in [workdir, *workdir.rglob("*")]:
    if p.is_dir():
      p.chmod(0o555)
  try:
    done = subprocess.run([*prefix, sys.executable, DRIVER, "plain", "-", "--", *argv],
                          cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"},
                          capture_output=True, text=True, timeout=300)
  finally:
    for p in [workdir, *workdir.rglob("*")]:
      if p.is_dir():
        p.chmod(0o755)
  assert done.returncode == 2
  assert "is not writable" in one_line_error(done.stderr)
  assert "train:" not in done.stderr  # stopped before any step
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["4"]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys,
                                                                   monkeypatch):
  real = train_module.make_train_step

  def make(*a, **k):
    step = real(*a, **k)

    def diverging(state, batch, rng):
      state, metrics = step(state, batch, rng)
      if int(state.step) >= 3:
        metrics = {**metrics, "loss": float("nan")}
      return state, metrics
    return diverging
  monkeypatch.setattr(train_module, "make_train_step", make)
  workdir = tmp_path / "w"
  assert main(["run", SPEC, "--workdir", str(workdir), *ARGS]) == 2
  line = one_line_error(capsys.readouterr().err)
  assert "the loss became nan at step 3; checkpoint step 2 is kept" in line
  assert [p.name for p in (workdir / "checkpoints").iterdir()] == ["2"]
  assert not (workdir / "metrics.json").exists()


# -- inputs bounded by the model -------------------------------------------------------------------
def test_a_5mb_input_is_cut_and_every_example_scored(tmp_path, capsys, shared_data):
  lamp = tmp_path / "lamp"
  lamp.mkdir()
  for f in (shared_data / "lamp_tiny").glob("LaMP_22_*"):
    shutil.copy(f, lamp)
  dev = lamp / "LaMP_22_dev_questions.json"
  questions = json.loads(dev.read_text())
  questions[1]["input"] += " filler" * 850_000  # ~5 MB
  dev.write_text(json.dumps(questions))
  spec = f"{ROOT / 'experiments' / 'lamp.py'}:method=rag,model=tiny-llama,path={lamp}"
  workdir = tmp_path / "w"
  assert main(["run", spec, "--workdir", str(workdir), "--config.methods.rag.retriever=bm25",
               "--config.eval.max_prompt_tokens=200", "--config.eval.max_new_tokens=2"]) == 0
  warnings = [l for l in capsys.readouterr().err.splitlines() if "warning" in l]
  assert len(warnings) == 1 and f"of {len(questions)} prompts were longer than 200" in warnings[0]
  records = (workdir / "predictions.jsonl").read_text().splitlines()
  assert len(records) == len(questions)
  assert task_metrics(json.loads((workdir / "metrics.json").read_text())) == \
      {"accuracy", "f1", "gold_nll", "gold_ppl"}


def test_generate_caps_max_new_tokens(capsys):
  argv = ["generate", "--model", "tiny-llama", "--prompt", "hello", "--no-chat"]
  assert main([*argv, "--max-new-tokens", "100000"]) == 0
  err = capsys.readouterr().err
  assert "perjax: --max-new-tokens 100000 capped at" in err and "context is 256 tokens" in err
  assert main([*argv, "--top-p", "2"]) == 2
  assert "top_p must be in (0, 1]" in one_line_error(capsys.readouterr().err, "generate")


# -- smaller commands -------------------------------------------------------------------------------
def _golds(path: Path, outputs) -> str:
  path.write_text(json.dumps({"task": "LaMP_3", "golds": [{"id": str(i), "output": o}
                                                          for i, o in enumerate(outputs)]}))
  return str(path)


def test_evaluate_never_prints_nan_or_infinity(tmp_path, capsys):
  golds = _golds(tmp_path / "g.json", ["1", "NaN"])
  assert main(["evaluate", golds, _golds(tmp_path / "p.json", ["1", "2"])]) == 2
  assert "not a finite number: 'NaN'" in one_line_error(capsys.readouterr().err, "evaluate")
  golds = _golds(tmp_path / "g.json", ["1", "2"])
  assert main(["evaluate", golds, _golds(tmp_path / "p.json", ["1", "1e308"])]) == 2
  assert "metric 'RMSE' is inf" in one_line_error(capsys.readouterr().err, "evaluate")
  assert main(["evaluate", golds, _golds(tmp_path / "p.json", ["1", "3"])]) == 0
  assert json.loads(capsys.readouterr().out) == {"MAE": 0.5, "RMSE": 0.5 ** 0.5}


def test_data_inspect_messages(tmp_path, capsys, shared_data):
  assert main(["data", "inspect", "lamp", "--json"]) == 0
  assert json.loads(capsys.readouterr().out)["examples"] > 0
  binary = tmp_path / "blob.bin"
  binary.write_bytes(bytes(range(256)))
  assert main(["data", "inspect", str(binary)]) == 2
  assert "is a binary file" in one_line_error(capsys.readouterr().err, "data")
  assert main(["data", "inspect", str(tmp_path / "missing" / "folder")]) == 2
  assert "no such file or folder" in one_line_error(capsys.readouterr().err, "data")


def test_list_accepts_fine_tuning_spellings(capsys):
  for spelling in ("fine-tuning", "fine_tuning"):
    assert main(["list", "--technique", spelling, "--json"]) == 0
    assert {m["technique"] for m in json.loads(capsys.readouterr().out)} == {"finetuning"}
