"""Training G groups together equals training each alone; accumulation; zero adapters."""
import jax
import numpy as np
import pytest

from engine_tiny import batch, examples, personal_arrays, run, tiny_model


def _rows(arrays, g):
  return {k: v[g] for k, v in arrays.items()}


def _assert_rows_close(a, b, atol):
  for k in a:
    np.testing.assert_allclose(a[k], b[k], atol=atol, rtol=0, err_msg=k)


# SGD agrees to rounding. Adam divides each gradient by its running RMS, which magnifies the
# rounding of tiny gradients (computed in a batch of a different make-up) to ~1e-6.
@pytest.mark.parametrize("tx,atol", [("sgd", 1e-6), ("adamw", 5e-6)])
def test_groups_trained_together_equal_each_alone(tx, atol):
  # Step 2 leaves group 2 out: AdamW must neither move it nor advance its step count.
  plan = [{0: 2, 1: 1, 2: 3}, {0: 1, 1: 2}, {0: 2, 1: 2, 2: 1}]
  step_examples = [examples(counts, seed=s) for s, counts in enumerate(plan)]
  joint, _ = run(tiny_model(), tx, [batch(e) for e in step_examples])
  joint = personal_arrays(joint)
  initial = personal_arrays(run(tiny_model(), tx, [])[0])
  for g in range(3):
    solo_batches = [batch([e for e in exs if e[2] == g]) for exs in step_examples
                    if any(e[2] == g for e in exs)]
    solo = personal_arrays(run(tiny_model(), tx, solo_batches)[0])
    _assert_rows_close(_rows(joint, g), _rows(solo, g), atol=atol)
    for other in set(range(3)) - {g}:  # solo training never touches another group's row
      _assert_rows_close(_rows(solo, other), _rows(initial, other), atol=0)
  prompt = "personal/soft_prompt/prompt"
  assert not np.allclose(joint[prompt][2], initial[prompt][2])


def test_absent_group_is_unchanged_in_a_step():
  model = tiny_model()
  state0, _ = run(model, "adamw", [])
  before = personal_arrays(state0)
  counts_before = jax.tree.leaves(state0.opt_personal)
  state, _ = run(tiny_model(), "adamw", [batch(examples({0: 2, 2: 1}))])
  after = personal_arrays(state)
  _assert_rows_close(_rows(after, 1), _rows(before, 1), atol=0)
  for old, new in zip(counts_before, jax.tree.leaves(state.opt_personal)):
    np.testing.assert_array_equal(np.asarray(old)[1], np.asarray(new)[1])  # moments and count
  assert not np.allclose(after["personal/lora/q_b"][0], before["personal/lora/q_b"][0])


def test_gradient_accumulation_matches_one_big_batch():
  # Uneven groups per micro-batch: group 2 only in the second half, group 0 in both.
  exs = examples({0: 3, 1: 1}, seed=3) + examples({2: 2, 0: 1, 1: 1}, seed=4)
  one, m1 = run(tiny_model(), "sgd", [batch(exs, accum=1)] * 2)
  two, m2 = run(tiny_model(), "sgd", [batch(exs, accum=2)] * 2)
  _assert_rows_close(personal_arrays(one), personal_arrays(two), atol=1e-6)
  np.testing.assert_allclose(m1[0]["objective"], m2[0]["objective"], rtol=1e-6)


def test_zero_adapter_is_exactly_the_base_model():
  ids = np.array([[5, 9, 11, 40, 3, 7], [6, 6, 12, 50, 8, 0]])
  mask = np.array([[1] * 6, [1] * 5 + [0]])
  base = tiny_model(groups=1, rank=0, prompt_len=0)
  reference = base(ids, attention_mask=mask)
  rank0 = tiny_model(groups=3, rank=0, prompt_len=0)
  fresh_lora = tiny_model(groups=3, rank=4, prompt_len=0, targets=("q", "k", "v", "o", "down"))
  for model in (rank0, fresh_lora):  # b starts at zero, so every group is the base
    for g in range(3):
      out = model(ids, attention_mask=mask, group_ids=np.full((2,), g))
      np.testing.assert_array_equal(np.asarray(out), np.asarray(reference))
