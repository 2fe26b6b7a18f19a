"""Checkpoints: a killed-and-resumed run is bitwise the uninterrupted one; keep-last-N; export."""
import jax
import numpy as np
import pytest

from engine_tiny import OPTIMIZERS, batch, examples, personal_arrays, tiny_model, trainer
from perjax import checkpoint
from perjax.errors import ConfigError
from perjax.training.step import merge_model

BATCHES = [batch(examples({0: 2, 1: 1, 2: 2}, seed=s)) for s in range(5)]


def _train(state, step, start, stop, ckpt=None):
  for i in range(start, stop):
    state, _ = step(state, BATCHES[i], jax.random.key(i))
    if ckpt is not None:
      ckpt.save(state)
  return state


def test_killed_run_resumes_bitwise(tmp_path):
  # One compiled step serves all three lives (a real restart would recompile the same program).
  _, state, step = trainer(tiny_model(), OPTIMIZERS["adamw"](), donate=True)
  reference = personal_arrays(_train(state, step, 0, 5))

  # First life: 3 steps, a checkpoint after each (the state is donated right after saving).
  _, state, _ = trainer(tiny_model(), OPTIMIZERS["adamw"]())
  assert checkpoint.resume(tmp_path, state) is state  # nothing to resume yet
  with checkpoint.Checkpoints(tmp_path, max_to_keep=2) as ckpt:
    _train(state, step, 0, 3, ckpt)
  del state, ckpt

  # Second life: fresh model (the frozen base comes from the model files, not the checkpoint).
  _, fresh, _ = trainer(tiny_model(), OPTIMIZERS["adamw"]())
  target = fresh.replace(**{k: jax.eval_shape(lambda x=getattr(fresh, k): x)
                            for k in ("step", "personal", "opt_personal")})
  restored = checkpoint.restore_latest(tmp_path, target)
  assert int(restored.step) == 3
  assert restored.base is fresh.base
  resumed = personal_arrays(_train(restored, step, 3, 5))
  for k in reference:
    np.testing.assert_array_equal(resumed[k], reference[k], err_msg=k)


def test_keeps_last_n_and_saves_only_trainable_parts(tmp_path):
  _, state, step = trainer(tiny_model(), OPTIMIZERS["sgd"]())
  with checkpoint.Checkpoints(tmp_path, max_to_keep=2) as ckpt:
    _train(state, step, 0, 4, ckpt)
    assert ckpt.steps() == [3, 4]
  names = {p.name for p in (tmp_path / "checkpoints" / "4").rglob("*")}
  assert not any("layers" in n or "embed" in n for n in names)  # no frozen base weights
  assert not list((tmp_path / "checkpoints").glob("*tmp*"))  # nothing half-written left


def test_export_and_load_one_group_round_trips(tmp_path):
  source = tiny_model(b_scale=0.2, seed=1)
  checkpoint.export_group(source, 1, tmp_path / "user1")
  target = tiny_model(seed=1)  # the same base weights; zero LoRA b
  before = personal_arrays_of(target)
  checkpoint.load_groups(target, {2: tmp_path / "user1"})
  after = personal_arrays_of(target)
  src = personal_arrays_of(source)
  for k in after:
    np.testing.assert_array_equal(after[k][2], src[k][1], err_msg=k)
    np.testing.assert_array_equal(after[k][:2], before[k][:2], err_msg=k)
  ids = np.array([[4, 8, 15, 16, 23, 42]])
  np.testing.assert_array_equal(np.asarray(target(ids, group_ids=[2])),
                                np.asarray(source(ids, group_ids=[1])))


def test_load_into_a_different_lora_alpha_keeps_the_adapter(tmp_path):
  source = tiny_model(b_scale=0.2, seed=1, alpha=12.0)
  checkpoint.export_group(source, 0, tmp_path / "u")
  target = tiny_model(seed=1, alpha=3.0)
  checkpoint.load_groups(target, {1: tmp_path / "u"})
  ids = np.array([[4, 8, 15, 16, 23, 42]])
  np.testing.assert_allclose(np.asarray(target(ids, group_ids=[1])),
                             np.asarray(source(ids, group_ids=[0])), atol=1e-5)


def test_export_from_train_state_and_mismatch_errors(tmp_path):
  model = tiny_model(b_scale=0.2)
  graphdef, state, _ = trainer(model, OPTIMIZERS["sgd"]())
  with pytest.raises(ConfigError, match="merge_model"):
    checkpoint.export_group(state, 0, tmp_path / "g0")  # a TrainState is not a model
  checkpoint.export_group(merge_model(graphdef, state), 0, tmp_path / "g0")
  rows, modules = checkpoint.read_group(tmp_path / "g0")
  assert modules["lora"]["options"] == {"rank": 3, "alpha": 6.0, "targets": ["q", "v"]}
  assert modules["soft_prompt"]["kind"] == "perjax.methods.soft_prompt.SoftPrompt"
  np.testing.assert_array_equal(rows["soft_prompt/prompt"],
                                personal_arrays(state)["personal/soft_prompt/prompt"][0])
  with pytest.raises(ConfigError, match="has shape"):
    checkpoint.load_groups(tiny_model(rank=2), {0: tmp_path / "g0"})  # another rank
  with pytest.raises(ConfigError, match="modules"):
    checkpoint.load_groups(tiny_model(prompt_len=0), {0: tmp_path / "g0"})  # no soft prompt
  with pytest.raises(ConfigError, match="outside"):
    checkpoint.load_groups(merge_model(graphdef, state), {3: tmp_path / "g0"})


def personal_arrays_of(model):
  from flax import nnx
  from perjax.models.personal import Personal
  return {"/".join(map(str, p)): np.asarray(v)
          for p, v in nnx.to_flat_state(nnx.state(model, Personal))}
