"""`perjax run --processes P`: the experiment runner as P local JAX processes (jax.distributed,
gloo on CPU), each supplying its own rows of every batch, trains to the one-process run's
losses and predictions; process 0 alone writes the workdir; a killed run resumes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiment_tiny import SPEC, cli_overrides, quickstart_sweep, same_run_outputs
from perjax.cli import main

ROOT = Path(__file__).resolve().parents[1]
LORA = SPEC + ",method=lora,granularity=user"


def _events(path: Path) -> dict[int, float]:
  """{step: train/loss} of a TensorBoard folder or one event file."""
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  events = EventAccumulator(str(path))
  events.Reload()
  return {e.step: e.value for e in events.Scalars("train/loss")}


def _command(workdir: Path, processes: int, extra: dict) -> list[str]:
  return [sys.executable, "-m", "perjax", "run", LORA, "--workdir", str(workdir),
          "--processes", str(processes), *cli_overrides(extra)]


def _env() -> dict:
  return {**os.environ, "JAX_PLATFORMS": "cpu"}


def _answers(workdir: Path) -> list:
  return [(r["id"], r["prediction"]) for r in map(json.loads, (workdir / "predictions.jsonl")
                                                  .read_text().splitlines())]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
  """The tiny lora run (3 steps) in one process: the reference."""
  one = tmp_path_factory.mktemp("one") / "run"
  assert main(["run", LORA, "--workdir", str(one), *cli_overrides()]) == 0
  return one


@pytest.mark.slow
def test_two_processes_give_the_losses_and_predictions_of_one(tmp_path, one_process):
  one, two = one_process, tmp_path / "two"
  done = subprocess.run(_command(two, 2, {}), cwd=ROOT, env=_env(), capture_output=True,
                        text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip().splitlines() == [json.dumps(json.loads(
      (two / "metrics.json").read_text()))]  # process 0's metrics, once

  losses_one, losses_two = _events(one / "tensorboard"), _events(two / "tensorboard")
  assert sorted(losses_one) == sorted(losses_two) == [1, 2, 3]
  assert losses_one[3] != losses_one[1]  # it trains: the comparison below is not of constants
  for step, loss in losses_one.items():
    assert abs(losses_two[step] - loss) <= 1e-5, (step, loss, losses_two[step])
  assert _answers(two) == _answers(one)
  same_run_outputs(one, two)  # the measured wall time aside (cost.deterministic)
  # process 0 alone wrote the outputs: one event file, and the checkpoints of the steps
  assert len(list((two / "tensorboard").iterdir())) == 1
  assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["2", "3"]


def test_a_batch_that_does_not_split_over_the_processes_is_one_line(tmp_path, capsys):
  code = main(["run", LORA, "--workdir", str(tmp_path / "w"), "--processes", "2",
               *cli_overrides({"train.batch_size": 3})])
  err = capsys.readouterr().err.strip()
  assert code == 2 and len(err.splitlines()) == 1
  assert "train.batch_size 3 does not split over 2 processes" in err
  assert not (tmp_path / "w").exists()  # refused before anything started


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_one_process_result(tmp_path):
  """SIGKILL of every process once the first checkpoint is committed; the rerun resumes from
  it (its own event file starts after it) and ends as the uninterrupted one-process run."""
  extra = {"train.steps": 6}
  one, two = tmp_path / "one", tmp_path / "two"
  assert main(["run", LORA, "--workdir", str(one), *cli_overrides(extra)]) == 0
  run = subprocess.Popen(_command(two, 2, extra), cwd=ROOT, env=_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)  # its own group: the launcher and its processes
  deadline = time.monotonic() + 300
  while not (two / "checkpoints" / "2").exists():
    assert run.poll() is None and time.monotonic() < deadline, "no checkpoint 2 was written"
    time.sleep(0.01)
  os.killpg(run.pid, signal.SIGKILL)
  run.wait()
  assert not (two / "metrics.json").exists()

  done = subprocess.run(_command(two, 2, extra), cwd=ROOT, env=_env(), capture_output=True,
                        text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  resumed = max((two / "tensorboard").iterdir(), key=lambda p: p.stat().st_mtime)
  losses_one, losses_resumed = _events(one / "tensorboard"), _events(resumed)
  assert min(losses_resumed) > 2 and max(losses_resumed) == 6  # from a checkpoint, not step 0
  for step, loss in losses_resumed.items():
    assert abs(loss - losses_one[step]) <= 1e-5, (step, loss, losses_one[step])
  assert _answers(two) == _answers(one)


@pytest.mark.slow
def test_a_two_process_sweep_runs_each_run_as_two_processes(tmp_path, one_process):
  path = tmp_path / "tiny_sweep.py"
  path.write_text(quickstart_sweep('add(method="zero_shot", granularity="global")',
                                    'add(method="lora", granularity="user")'))
  out = tmp_path / "sweep"
  done = subprocess.run([sys.executable, "-m", "perjax", "sweep",
                         f"{path}:smoke,model=tiny-llama", "--workdir", str(out),
                         "--processes", "2", *cli_overrides()],
                        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout == (out / "results.md").read_text()  # process 0's table, once
  lora = out / "method=lora,granularity=user"
  assert _answers(lora) == _answers(one_process)
  losses = _events(lora / "tensorboard")
  for step, loss in _events(one_process / "tensorboard").items():
    assert abs(losses[step] - loss) <= 1e-5, (step, loss, losses[step])
  assert (out / "method=zero_shot,granularity=global" / "metrics.json").exists()


def _free_slurm_job_id() -> int:
  """A job id whose coordinator port (JAX's Slurm rule: 61440 + id % 4096) is free now."""
  import socket
  for job in range(1, 4096):
    with socket.socket() as s:
      try:
        s.bind(("localhost", 61440 + job))
      except OSError:
        continue
      return job
  pytest.skip("no free port for the coordinator")


@pytest.mark.slow
def test_distributed_joins_a_cluster_from_its_environment(tmp_path, one_process):
  """`--distributed` in each of 2 processes with a Slurm task's environment (one host):
  jax.distributed.initialize() finds its place there, and the run is the 1-process run."""
  workdir, job = tmp_path / "slurm", _free_slurm_job_id()
  command = [sys.executable, "-m", "perjax", "run", LORA, "--workdir", str(workdir),
             "--distributed", *cli_overrides()]
  tasks = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**_env(), "SLURM_JOB_ID": str(job),
                                            "SLURM_STEP_NODELIST": "localhost",
                                            "SLURM_NTASKS": "2", "SLURM_PROCID": str(i),
                                            "SLURM_LOCALID": str(i)})
           for i in range(2)]
  outputs = [task.communicate(timeout=600) for task in tasks]
  assert [task.returncode for task in tasks] == [0, 0], outputs[0][1][-2000:]
  metrics = (workdir / "metrics.json").read_text()
  assert json.loads(outputs[0][0].strip().splitlines()[-1]) == json.loads(metrics)
  assert "{" not in outputs[1][0]  # only process 0 reports
  assert _answers(workdir) == _answers(one_process)
  losses = _events(workdir / "tensorboard")
  for step, loss in _events(one_process / "tensorboard").items():
    assert abs(losses[step] - loss) <= 1e-5, (step, loss, losses[step])


def test_the_launcher_stops_the_others_when_one_process_fails():
  """A process that fails leaves the others waiting in a collective: the launcher kills them
  after a grace period, and reports the one that failed first (the killed get no code)."""
  from perjax import distributed
  start = time.monotonic()
  procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]),
           subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])]
  assert distributed._wait_all(procs, timeout=None) == [None, 3]
  assert procs[0].returncode == -signal.SIGKILL
  assert time.monotonic() - start < 60
