"""The library attention kernels (`jax.nn.dot_product_attention`, causal with row lengths) give
the training loss and personal gradients of perjax's own masked attention on right-padded
batches, soft-prompt prefix and empty filler rows included. "xla" runs here; "cudnn" is the same
call with another implementation, so on a CPU only its refusal is tested."""
import json

import jax
import numpy as np
import pytest
from flax import nnx

from engine_tiny import batch, examples, tiny_model
from perjax.cli import main
from perjax.errors import ConfigError
from perjax.experiment.config import defaults
from perjax.experiment.validate import check_settings
from perjax.training import objectives, step as steplib
from perjax.training.model_options import set_training_options


def _loss_and_grads(model, rows, attention):
  set_training_options(model, attention=attention)
  graphdef, personal, base, rest = steplib.split_model(model)

  def loss(personal):
    return objectives.lm_loss(nnx.merge(graphdef, personal, base, rest), rows, None, 3)[0]

  value, grads = jax.jit(jax.value_and_grad(loss))(personal)
  return float(value), [np.asarray(g) for g in jax.tree.leaves(grads)]


@pytest.fixture(scope="module")
def rows():
  # 6 examples of lengths 5..11 in 8 rows: right padding, and two empty filler rows
  return jax.tree.map(lambda a: a[0], batch(examples({0: 2, 1: 3, 2: 1}), rows=8))


@pytest.mark.parametrize("unroll", [False, True])
def test_xla_kernel_keeps_loss_and_grads(rows, unroll):
  model = tiny_model(groups=3, prompt_len=2, b_scale=0.3)  # LoRA and a 2-token soft prompt
  model.unroll_layers = unroll
  assert np.asarray(rows["attention_mask"]).sum(1).min() == 0  # the filler rows are there
  own, own_grads = _loss_and_grads(model, rows, "default")
  library, library_grads = _loss_and_grads(model, rows, "xla")
  assert own > 1.0
  np.testing.assert_allclose(library, own, rtol=1e-6)
  for got, want in zip(library_grads, own_grads):
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_xla_kernel_logits_on_real_tokens(rows):
  model = tiny_model(groups=3, prompt_len=2, b_scale=0.3)
  call = lambda: np.asarray(model(rows["input_ids"], group_ids=rows["group_ids"],
                                  attention_mask=rows["attention_mask"]))
  set_training_options(model, attention="default")
  own = call()
  set_training_options(model, attention="xla")
  library = call()
  real = np.asarray(rows["attention_mask"]).astype(bool)
  assert real.sum() > 30
  np.testing.assert_allclose(library[real], own[real], rtol=1e-5, atol=1e-5)


def test_kernel_refusals_are_one_line():
  model = tiny_model()
  with pytest.raises(ConfigError, match="unknown attention kernel 'cudn'; did you mean 'cudnn'"):
    set_training_options(model, attention="cudn")
  with pytest.raises(ConfigError, match="cudnn attention runs in bfloat16 or float16, not float32"):
    set_training_options(model, attention="cudnn")  # the tiny model computes in float32
  if jax.default_backend() != "gpu":
    model.dtype = np.dtype("bfloat16")
    with pytest.raises(ConfigError, match="cudnn attention needs an NVIDIA GPU"):
      set_training_options(model, attention="cudnn")
  with pytest.raises(ConfigError, match="loss_chunk must be >= 0"):
    set_training_options(model, loss_chunk=-1)
  assert model.attention == "default"  # a refused option changes nothing


def test_experiment_config_checks_the_kernel():
  config = defaults()
  config.model = "tiny-llama"
  config.attention = "flash"
  with pytest.raises(ConfigError, match="attention: unknown attention kernel 'flash'"):
    check_settings(config, trains=True)
  config.attention = "xla"
  check_settings(config, trains=True)


def _bench(capsys, *flags):
  code = main(["bench", "train", "--model", "tiny-llama", "--users", "3", "--steps", "2",
               "--batch", "2", "--seq", "13", "--rank", "2", "--json", *flags])
  out, err = capsys.readouterr()
  return code, out, err


def test_bench_train_with_the_xla_kernel(capsys):
  _, own, _ = _bench(capsys)
  code, library, _ = _bench(capsys, "--attention", "xla")
  own, library = json.loads(own), json.loads(library)
  assert code == 0 and library["attention"] == "xla" and own["attention"] == "default"
  assert abs(library["loss"] - own["loss"]) < 1e-5 * own["loss"]


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="cudnn may run on this machine")
def test_bench_train_refuses_cudnn_without_a_gpu(capsys):
  code, _, err = _bench(capsys, "--attention", "cudnn", "--dtype", "bfloat16")
  assert code == 2 and len(err.strip().splitlines()) == 1
  assert "cudnn attention needs an NVIDIA GPU" in err


def test_bench_train_names_an_unknown_kernel(capsys):
  code, _, err = _bench(capsys, "--attention", "flash")
  assert code == 2 and len(err.strip().splitlines()) == 1
  assert "--attention: unknown attention kernel 'flash'" in err
