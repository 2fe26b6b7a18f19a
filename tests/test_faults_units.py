"""The reliability pieces on their own: workdir lock, prompt cut, length batches, strict JSON,
sampling and settings checks (no model runs; see test_faults.py for whole runs)."""
import json
import math
import os
import socket
import subprocess
import sys

import pytest

from perjax.bounded_inputs import cut_middle, fit_prompts, length_batches, prompt_limit
from perjax.errors import ConfigError, PerjaxError
from perjax.experiment import config as cfg
from perjax.experiment import validate, workdir
from perjax.generation import SamplingConfig
from perjax.strict_json import NonFiniteValue, dumps
from perjax.taxonomy import Technique, parse_technique


# -- workdir lock ------------------------------------------------------------------------------
def test_lock_is_exclusive_and_released(tmp_path):
  with workdir.WorkdirLock(tmp_path / "run") as lock:
    holder = json.loads(lock.path.read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    with pytest.raises(workdir.WorkdirBusy, match=f"in use by pid {os.getpid()} on "):
      workdir.WorkdirLock(tmp_path / "run").acquire()
    assert workdir.live_holder(tmp_path / "run")["pid"] == os.getpid()
  assert not lock.path.exists() and workdir.live_holder(tmp_path / "run") is None


def test_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  (tmp_path / workdir.LOCK_FILE).write_text(json.dumps(
      {"pid": dead.pid, "host": socket.gethostname(), "start": "1"}))
  with workdir.WorkdirLock(tmp_path):
    assert json.loads((tmp_path / workdir.LOCK_FILE).read_text())["pid"] == os.getpid()
  assert f"taking over the lock of pid {dead.pid}" in capsys.readouterr().err


def test_lock_of_a_live_process_or_another_host_is_respected(tmp_path):
  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    (tmp_path / workdir.LOCK_FILE).write_text(json.dumps(
        {"pid": sleeper.pid, "host": socket.gethostname(),
         "start": workdir._start_time(sleeper.pid)}))
    with pytest.raises(workdir.WorkdirBusy, match=f"pid {sleeper.pid}"):
      workdir.WorkdirLock(tmp_path).acquire()
    # the same pid with another start time is a reused pid: stale
    (tmp_path / workdir.LOCK_FILE).write_text(json.dumps(
        {"pid": sleeper.pid, "host": socket.gethostname(), "start": "-1"}))
    assert workdir.live_holder(tmp_path) is None
  finally:
    sleeper.kill()
  (tmp_path / workdir.LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
  with pytest.raises(workdir.WorkdirBusy, match="pid 1 on elsewhere"):
    workdir.WorkdirLock(tmp_path).acquire()


def test_workdir_that_is_a_file_is_one_error(tmp_path):
  (tmp_path / "f").write_text("x")
  with pytest.raises(PerjaxError, match="is a file"):
    workdir.WorkdirLock(tmp_path / "f").acquire()
  with pytest.raises(PerjaxError, match="lies under a file"):
    workdir.WorkdirLock(tmp_path / "f" / "run").acquire()


def test_claim_and_finished_check_survive_damaged_files(tmp_path, capsys):
  resolved = json.dumps({"method": "lora"})
  workdir.claim(tmp_path, resolved)
  (tmp_path / "checkpoints").mkdir()
  workdir.claim(tmp_path, resolved)  # same config: fine
  with pytest.raises(ConfigError, match=r"differs in \['method'\]"):
    workdir.claim(tmp_path, json.dumps({"method": "rag"}))
  (tmp_path / "config.json").write_text("")
  with pytest.raises(PerjaxError, match="config.json is damaged"):
    workdir.claim(tmp_path, resolved)
  (tmp_path / "metrics.json").write_text("")
  assert workdir.finished_metrics(tmp_path) is None
  assert "metrics.json is damaged; evaluating the run again" in capsys.readouterr().err
  assert not (tmp_path / "metrics.json").exists()


def test_a_run_resumes_after_a_method_it_does_not_use_is_added(tmp_path):
  old = {"method": "lora", "methods": {"lora": {"rank": 4}}}
  workdir.claim(tmp_path, json.dumps(old), {"lora"})
  (tmp_path / "checkpoints").mkdir()
  # a new method's defaults appear in the resolved config: not another run
  added = {**old, "methods": {**old["methods"], "new_method": {"k": 1}}}
  workdir.claim(tmp_path, json.dumps(added), {"lora"})
  with pytest.raises(ConfigError, match=r"differs in \['methods.lora.rank'\]"):
    workdir.claim(tmp_path, json.dumps({**added, "methods": {"lora": {"rank": 8}}}), {"lora"})


def test_a_run_resumes_after_a_core_setting_is_added_at_its_default(tmp_path):
  old = cfg.defaults().to_dict()
  for key in ("schedule", "warmup", "weight_decay", "grad_clip"):  # a run started before them
    del old["train"][key]
  workdir.claim(tmp_path, json.dumps(old), set())
  (tmp_path / "checkpoints").mkdir()
  workdir.claim(tmp_path, json.dumps(cfg.defaults().to_dict()), set())  # defaults: same run
  changed = cfg.defaults()
  changed.train.schedule = "cosine"
  with pytest.raises(ConfigError, match=r"differs in \['train.schedule'\]"):
    workdir.claim(tmp_path, json.dumps(changed.to_dict()), set())


def test_shared_runs_waits_for_held_runs_after_the_rest(tmp_path, monkeypatch):
  holders = {"b": {"pid": 7, "host": "h"}}
  monkeypatch.setattr(workdir, "live_holder", lambda folder: holders.get(folder.name))
  order = []

  def run(key):
    order.append(key)
    if key == "c":
      holders.pop("b")  # the other process lets go of b meanwhile
  workdir.shared_runs(["a", "b", "c"], lambda k: tmp_path / k, run, poll_s=0)
  assert order == ["a", "c", "b"]


# -- inputs bounded by the model -----------------------------------------------------------------
def test_cut_keeps_head_and_end():
  ids = list(range(100))
  assert cut_middle(ids, 200) == ids
  cut = cut_middle(ids, 10)
  assert cut == [0, 1, 2, 3, 4, 95, 96, 97, 98, 99]
  assert prompt_limit(256, reserve=8, prefix=3) == 245
  assert prompt_limit(256, reserve=8, max_tokens=100) == 100


def test_fit_prompts_warns_once_counting_the_cut(capsys):
  out = fit_prompts([[1] * 5, [2] * 50, [3] * 70], 20, why="the test's limit")
  assert [len(p) for p in out] == [5, 20, 20]
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "2 of 3 prompts were longer than 20 tokens" in err[0]
  fit_prompts([[1] * 5], 20)
  assert capsys.readouterr().err == ""


def test_length_batches_bound_padded_tokens():
  lengths = [30] * 9 + [5000]
  batches = length_batches(lengths, batch_size=4)
  assert sorted(i for b in batches for i in b) == list(range(10))
  assert batches[-1] == [9]  # the outlier alone: its own row, never 4 x 5000
  assert all(len(b) <= 4 for b in batches)
  for b in batches[:-1]:
    assert all(lengths[i] == 30 for i in b)


# -- strict JSON, sampling, taxonomy, settings ---------------------------------------------------
def test_strict_json_names_the_non_finite_value():
  assert json.loads(dumps({"a": 1.5})) == {"a": 1.5}
  with pytest.raises(NonFiniteValue, match="metric 'RMSE' is inf"):
    dumps({"MAE": 1.0, "RMSE": math.inf}, what="metric")
  with pytest.raises(NonFiniteValue, match="'rows.1.x' is nan"):
    dumps({"rows": [{"x": 1.0}, {"x": math.nan}]})


@pytest.mark.parametrize("field,kwargs", [
    ("max_new_tokens", dict(max_new_tokens=0)), ("temperature", dict(temperature=-1.0)),
    ("temperature", dict(temperature=math.nan)), ("top_k", dict(top_k=-2)),
    ("top_p", dict(top_p=0.0)), ("top_p", dict(top_p=1.5))])
def test_sampling_errors_name_the_field(field, kwargs):
  with pytest.raises(ConfigError) as e:
    SamplingConfig(**kwargs)
  assert str(e.value).startswith(field) and "SamplingConfig(" not in str(e.value)


def test_finetuning_spellings():
  for spelling in ("finetuning", "fine-tuning", "fine_tuning", "Fine-Tuning"):
    assert parse_technique(spelling) is Technique.FINETUNING
  with pytest.raises(ConfigError, match="unknown technique"):
    parse_technique("fine tuning please")


def _config(**overrides):
  config = cfg.defaults()
  config.model = "tiny-llama"
  for k, v in overrides.items():
    cfg.override(config, k, v)
  return config


@pytest.mark.parametrize("key,value,message", [
    ("train.steps", 0, "train.steps must be a positive integer, got 0"),
    ("train.steps", -3, "train.steps must be a positive integer, got -3"),
    ("train.batch_size", 0, "train.batch_size"), ("train.accum", 0, "train.accum"),
    ("train.checkpoint_every", 0, "train.checkpoint_every"), ("train.seq_len", 0, "train.seq_len"),
    ("train.lr", math.nan, "train.lr must be a finite positive number, got nan"),
    ("train.lr", math.inf, "train.lr must be a finite positive number, got inf"),
    ("train.schedule", "cosin", "train.schedule must be one of .*'cosine'.*, got 'cosin'"),
    ("train.warmup", 100, "train.warmup (100) must be below the steps of every training stage "
     "(100)"), ("train.warmup", -1, "train.warmup"),
    ("train.optimizer", "adamx", r"train.optimizer must be one of \['adam', 'adamw', 'sgd'\], "
     "got 'adamx'"),
    ("train.weight_decay", -0.1, "train.weight_decay must be a finite number >= 0 (0: off), got "
     "-0.1"), ("train.grad_clip", math.nan, "train.grad_clip must be a finite number >= 0"),
    ("train.weight_decay", 0.01, "optimizer 'adam' takes no weight_decay (got 0.01); use adamw"),
    ("eval.batch_size", 0, "eval.batch_size"), ("eval.max_prompt_tokens", -1, "max_prompt_tokens"),
    ("model", "smollm2-135m-instrct", "did you mean 'smollm2-135m-instruct'"),
    ("model", "all-minilm-l6-v2", "model 'all-minilm-l6-v2' is an encoder"),
    ("model", "/no/such/model.gguf", "unknown model '/no/such/model.gguf'"),
    ("encoder", "all-minilm", "encoder: unknown model 'all-minilm'")])
def test_settings_are_checked(key, value, message):
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
    validate.check_settings(_config(**{key: value}), trains=True)


def test_training_settings_only_matter_when_training():
  validate.check_settings(_config(**{"train.steps": 0}), trains=False)
  validate.check_settings(_config(model="HuggingFaceTB/SmolLM2-135M-Instruct"), trains=True)


def test_new_tokens_are_capped_to_the_context(capsys):
  from perjax.bounded_inputs import cap_new_tokens
  assert cap_new_tokens(8, 256, 40, name="x") == 8
  assert capsys.readouterr().err == ""
  assert cap_new_tokens(100_000, 256, 40, name="--max-new-tokens") == 216
  assert cap_new_tokens(100_000, 256, 250, name="x") == 128  # the prompt is cut instead
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 2 and err[0].startswith("perjax: --max-new-tokens 100000 capped at 216")
