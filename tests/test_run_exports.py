"""A tiny-llama quickstart LoRA run: its TensorBoard events, and its exports (merged Hugging Face
folder read back by perjax's own Hugging Face loader, peft tensors, init.adapter)."""
import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from experiment_tiny import SPEC, cli_overrides
from perjax.cli import main
from perjax.export.finished_run import open_run, personalized_model
from perjax.models import hf_loader
from perjax.models.decoder_loading import build


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("lora") / "run"
  assert main(["run", SPEC + ",method=lora,granularity=user", "--workdir", str(workdir),
               *cli_overrides()]) == 0
  return workdir


def users(workdir):
  records = [json.loads(l) for l in (workdir / "predictions.jsonl").read_text().splitlines()]
  return {r["user_id"]: r["group"] for r in records}


def test_event_files_hold_a_loss_point_per_step(run):
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  events = EventAccumulator(str(run / "tensorboard"))
  events.Reload()
  steps = json.loads((run / "config.json").read_text())["train"]["steps"]
  assert [e.step for e in events.Scalars("train/loss")] == list(range(1, steps + 1))
  assert all(np.isfinite(e.value) and e.value > 0 for e in events.Scalars("train/loss"))
  assert all(e.value > 0 for e in events.Scalars("train/grad_norm"))
  assert [e.value for e in events.Scalars("train/learning_rate")] == [pytest.approx(0.01)] * steps
  assert all(1 <= e.value <= 2 for e in events.Scalars("train/groups_present"))  # batch of 2
  metrics = json.loads((run / "metrics.json").read_text())
  assert events.Scalars("eval/accuracy")[0].value == pytest.approx(metrics["accuracy"])


def test_the_run_names_its_rows(run):
  names = json.loads((run / "groups.json").read_text())["user"]
  assert all(names[group] == user for user, group in users(run).items())


def test_merged_export_computes_the_personalized_logits(run, tmp_path):
  user, group = sorted(users(run).items())[-1]
  assert main(["export", str(run), "--user", user, "--format", "merged",
               "--out", str(tmp_path / "m")]) == 0
  config = hf_loader.read_config(tmp_path / "m")
  model, _ = personalized_model(open_run(run))
  assert config == model.config
  merged = build(config, hf_loader.read_weights(tmp_path / "m", config))
  ids = np.random.default_rng(0).integers(3, config.vocab_size, size=(2, 11))
  want = np.asarray(model(ids, group_ids=np.array([group, group])))
  assert np.abs(want - np.asarray(model(ids, base_only=True))).max() > 1e-4  # trained: not the base
  np.testing.assert_allclose(np.asarray(merged(ids)), want, rtol=1e-4, atol=1e-5)


def test_peft_export_is_the_users_lora_rows_transposed(run, tmp_path):
  user, group = sorted(users(run).items())[0]
  assert main(["export", str(run), "--user", user, "--out", str(tmp_path / "p")]) == 0
  tensors = load_file(str(tmp_path / "p" / "adapter_model.safetensors"))
  config = json.loads((tmp_path / "p" / "adapter_config.json").read_text())
  lora = open_run(run).stack.lora
  assert (config["r"], config["lora_alpha"]) == (lora.rank, lora.alpha)
  for i in range(3):
    stem = f"base_model.model.model.layers.{i}.self_attn"
    np.testing.assert_array_equal(tensors[f"{stem}.q_proj.lora_A.weight"],
                                  np.asarray(lora.q_a[...][group, i]).T)
    np.testing.assert_array_equal(tensors[f"{stem}.v_proj.lora_B.weight"],
                                  np.asarray(lora.v_b[...][group, i]).T)


@pytest.mark.parametrize("argv, says", [(["--persona", "0"], "persona"),
                                        (["--user", "nobody"], "nobody"),
                                        ([], "--user")])
def test_export_selection_errors_are_one_line(run, tmp_path, capsys, argv, says):
  assert main(["export", str(run), *argv, "--out", str(tmp_path / "x")]) == 2
  err = capsys.readouterr().err.strip()
  assert says in err and len(err.splitlines()) == 1


def test_init_adapter_starts_every_row_from_the_adapter(run, tmp_path):
  """A second run from the first run's peft export, with a learning rate too small to move the
  rows: every user's exported row is the adapter it started from."""
  user = sorted(users(run))[0]
  assert main(["export", str(run), "--user", user, "--out", str(tmp_path / "p")]) == 0
  second = tmp_path / "second"
  assert main(["run", SPEC + ",method=lora,granularity=user", "--workdir", str(second),
               *cli_overrides({"train.lr": 1e-12, "train.steps": 1}),
               f"--config.init.adapter={tmp_path / 'p'}"]) == 0
  start = load_file(str(tmp_path / "p" / "adapter_model.safetensors"))
  for other in sorted(users(second)):
    assert main(["export", str(second), "--user", other, "--out", str(tmp_path / other)]) == 0
    got = load_file(str(tmp_path / other / "adapter_model.safetensors"))
    for key, value in start.items():
      np.testing.assert_allclose(got[key], value, atol=1e-8, err_msg=key)


def test_base_export_is_the_unpersonalized_model(run, tmp_path):
  assert main(["export", str(run), "--format", "base", "--out", str(tmp_path / "b")]) == 0
  config = hf_loader.read_config(tmp_path / "b")
  base = build(config, hf_loader.read_weights(tmp_path / "b", config))
  model, _ = personalized_model(open_run(run))
  ids = np.random.default_rng(2).integers(3, config.vocab_size, size=(1, 7))
  np.testing.assert_array_equal(np.asarray(base(ids)), np.asarray(model(ids, base_only=True)))


@pytest.fixture(scope="module")
def composed_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("composed") / "run"
  assert main(["run", SPEC + ",method=lora@global+lora,granularity=user", "--workdir",
               str(workdir), *cli_overrides()]) == 0
  return workdir


def test_composed_loras_export_as_one_adapter(composed_run, tmp_path):
  """lora@global+lora: --user gives the shared and the user's LoRA as one of summed rank (the
  merged folder computes the personalized logits), --global the shared LoRA alone."""
  from perjax.export import peft_format
  user, group = sorted(users(composed_run).items())[0]
  for fmt in ("peft", "merged"):
    assert main(["export", str(composed_run), "--user", user, "--format", fmt,
                 "--out", str(tmp_path / fmt)]) == 0
  assert main(["export", str(composed_run), "--global", "--out", str(tmp_path / "shared")]) == 0
  run = open_run(composed_run)
  modules = dict(run.stack.modules())
  assert sorted(modules) == ["lora", "lora_at_global"]
  both = peft_format.read_peft(tmp_path / "peft")
  shared = peft_format.read_peft(tmp_path / "shared")
  assert (both.rank, shared.rank) == (6, 3)
  product = lambda l, t: np.einsum("lir,lro->lio", l.tables[f"{t}_a"], l.tables[f"{t}_b"]) * l.scale
  own = lambda m, row, t: np.einsum("lir,lro->lio", np.asarray(m.tables()[f"{t}_a"][row]),
                                    np.asarray(m.tables()[f"{t}_b"][row])) * m.scale
  for t in ("q", "v"):
    np.testing.assert_allclose(product(shared, t), own(modules["lora_at_global"], 0, t), rtol=1e-5)
    np.testing.assert_allclose(product(both, t), own(modules["lora_at_global"], 0, t) +
                               own(modules["lora"], group, t), rtol=1e-4, atol=1e-7)
  config = hf_loader.read_config(tmp_path / "merged")
  merged = build(config, hf_loader.read_weights(tmp_path / "merged", config))
  model, _ = personalized_model(run)
  ids = np.random.default_rng(3).integers(3, config.vocab_size, size=(1, 9))
  np.testing.assert_allclose(np.asarray(merged(ids)),
                             np.asarray(model(ids, group_ids=np.array([group]))),
                             rtol=1e-4, atol=1e-5)
