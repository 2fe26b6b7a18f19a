"""SmolLM2-135M-Instruct parity with transformers (PyTorch), from reference/smollm2_reference.npz.

The reference is recorded by reference/make_smollm2_reference.py from the same GGUF, which
transformers dequantizes to float32 as perjax does, so the weights are identical.
"""
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import perjax
from perjax.models import zoo

HERE = Path(__file__).parent / "reference"
REF = np.load(HERE / "smollm2_reference.npz")
META = json.loads((HERE / "smollm2_reference.json").read_text())
LOGIT_RTOL = 1e-4  # relative to the largest |logit| at that position

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smollm2():
  try:
    zoo.fetch("smollm2-135m-instruct", progress=False)
  except Exception as e:  # offline and not cached
    pytest.skip(f"smollm2-135m-instruct could not be fetched (offline?): {e}")
  return perjax.models.load("smollm2-135m-instruct", progress=False)


@pytest.fixture(scope="module")
def logits_fn(smollm2):
  """Jitted `model(ids, attention_mask=mask)`; the weights are an argument, not baked constants."""
  graphdef, state = nnx.split(smollm2[0])
  fn = jax.jit(lambda state, ids, mask: nnx.merge(graphdef, state)(ids, attention_mask=mask))
  return lambda ids, mask=None: fn(state, ids, jnp.ones_like(ids) if mask is None else mask)


@pytest.mark.parametrize("i", range(len(META["token_texts"])))
def test_token_ids_match_transformers(smollm2, i):
  _, tok = smollm2
  ids = tok(META["token_texts"][i], add_special_tokens=False)["input_ids"]
  assert ids == REF[f"token_ids_{i}"].tolist()
  assert tok.decode(ids) == META["token_texts"][i]


@pytest.mark.parametrize("i", range(len(META["greedy_prompts"])))
def test_chat_template_matches_transformers(smollm2, i):
  _, tok = smollm2
  text = tok.apply_chat_template([{"role": "user", "content": META["greedy_prompts"][i]}],
                                 tokenize=False, add_generation_prompt=True)
  assert tok(text, add_special_tokens=False)["input_ids"] == REF[f"prompt_ids_{i}"].tolist()


def test_logits_match_transformers(logits_fn):
  worst = 0.0
  for i in range(len(META["logit_texts"])):
    ids = REF[f"logit_ids_{i}"]
    logits = np.asarray(logits_fn(jnp.asarray(ids[None])))[0]  # [T, V]
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(logits.argmax(-1), REF[f"logit_argmax_{i}"])
    cols = REF[f"logit_cols_{i}"]
    ours = np.take_along_axis(logits, cols, axis=1)
    scale = REF[f"logit_absmax_{i}"][:, None]
    rel = np.abs(ours - REF[f"logit_vals_{i}"]) / scale
    np.testing.assert_allclose(np.abs(logits).max(-1), scale[:, 0], rtol=LOGIT_RTOL)
    worst = max(worst, float(rel.max()))
  print(f"max relative logit error vs transformers: {worst:.2e}")
  assert worst < LOGIT_RTOL


def _greedy(logits_fn, prompt, steps, eos):
  """Argmax decoding by re-running the full forward on the growing sequence (no cache).

  The sequence is right-padded to one fixed length so that every step reuses one compilation.
  """
  ids = list(prompt)
  width = len(prompt) + steps
  for _ in range(steps):
    padded = np.zeros((1, width), np.int32)
    mask = np.zeros((1, width), np.int32)
    padded[0, :len(ids)], mask[0, :len(ids)] = ids, 1
    logits = logits_fn(jnp.asarray(padded), jnp.asarray(mask))
    nxt = int(np.asarray(logits)[0, len(ids) - 1].argmax())
    ids.append(nxt)
    if nxt in eos:
      break
  return ids[len(prompt):]


@pytest.mark.parametrize("i", range(len(META["greedy_prompts"])))
def test_greedy_continuation_matches_transformers(smollm2, logits_fn, i):
  model, _ = smollm2
  expected = REF[f"greedy_{i}"].tolist()
  got = _greedy(logits_fn, REF[f"prompt_ids_{i}"].tolist(), META["new_tokens"],
                set(model.config.eos_token_ids))
  assert got == expected
