"""DPO / P-DPO: the loss against a numpy reference, log 2 at init, learning on a tiny preference
set, group independence of the objective, and the runner on preference tasks."""
import functools
import math

import jax
import numpy as np
import optax
import pytest

import engine_tiny as et
from experiment_tiny import PREF_SPEC, SPEC, TINY, TINY_PREF, require_dsp_data, task_metrics
from perjax import experiment
from perjax.errors import ConfigError
from perjax.method import get_method
from perjax.training import batching
from perjax.training import step as steplib

DPO = get_method("dpo")
dpo_module = __import__(DPO.objective.__module__, fromlist=["dpo_loss"])
BETA = 0.1
objective = functools.partial(DPO.objective, options={"beta": BETA})


def pairs(group_counts, seed=0):
  """{group: n} -> n preference pairs per group: same prompt, two different responses."""
  chosen = et.examples(group_counts, seed=seed)
  rejected = et.examples(group_counts, seed=seed + 1)
  out = []
  for (ci, cm, g), (ri, rm, _) in zip(chosen, rejected):
    split = cm.index(1)
    rejected_ids = ci[:split] + ri[split:] if len(ri) > split + 1 else ci[:split] + ri[-2:]
    out.append(((ci, cm), (rejected_ids, [0] * split + [1] * (len(rejected_ids) - split)), g))
  return out


def pref_batch(ps, accum=1):
  return batching.make_preference_batch(ps, et.SEQ, pad_id=0, accum=accum)


def test_dpo_loss_matches_numpy():
  rng = np.random.default_rng(0)
  pc, pr, rc, rr = (rng.normal(size=7) * 5 for _ in range(4))
  losses, margin = dpo_module.dpo_loss(pc, pr, rc, rr, 0.3)
  ref_margin = (pc - rc) - (pr - rr)
  np.testing.assert_allclose(margin, ref_margin, rtol=1e-6)
  np.testing.assert_allclose(losses, np.log1p(np.exp(-0.3 * ref_margin)), rtol=1e-5)


def test_init_loss_is_log2_and_margins_zero():
  model = et.tiny_model(groups=2, prompt_len=0)  # LoRA b = 0: policy == reference
  batch = jax.tree.map(lambda x: x[0], pref_batch(pairs({0: 2, 1: 3})))
  loss, metrics = objective(model, batch, jax.random.key(0), 2)
  assert float(loss) == pytest.approx(2 * math.log(2), abs=1e-6)  # sum over 2 groups' means
  assert float(metrics["loss"]) == pytest.approx(math.log(2), abs=1e-6)
  assert float(metrics["reward_accuracy"]) == 0.0  # margins are exactly 0, never > 0


def _trainer(model, tx):
  graphdef, state, ptx, btx = steplib.init_train_state(model, tx)
  step = steplib.make_train_step(graphdef, ptx, btx, objective,
                                 model.tiny_layout[0], donate=False)
  return state, step


def test_training_increases_reward_accuracy():
  model = et.tiny_model(groups=2, prompt_len=0)
  batch = pref_batch(pairs({0: 3, 1: 3}))
  state, step = _trainer(model, optax.adam(3e-2))
  history = []
  for i in range(12):
    state, m = step(state, batch, jax.random.key(i))
    history.append(jax.device_get(m))
  assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
  assert history[-1]["loss"] < 0.6 < math.log(2)
  assert history[-1]["reward_accuracy"] > 0.8


@pytest.mark.parametrize("accum", [1, 2])
def test_groups_independent_under_dpo(accum):
  """Two groups trained together (uneven pair counts) == each trained alone (SGD)."""
  model = et.tiny_model(groups=2, prompt_len=0, b_scale=0.05)  # non-trivial start
  both = pairs({0: 2, 1: 4}, seed=3)
  alone = {g: [p for p in both if p[2] == g] for g in (0, 1)}
  state, step = _trainer(model, optax.sgd(0.5))
  together = state
  for i in range(2):
    together, _ = step(together, pref_batch(both, accum), jax.random.key(i))
  for g, ps in alone.items():
    solo = state
    for i in range(2):
      solo, _ = step(solo, pref_batch(ps, accum), jax.random.key(i))
    for (path, a), (_, b) in zip(et.personal_arrays(together).items(),
                                 et.personal_arrays(solo).items()):
      np.testing.assert_allclose(a[g], b[g], atol=1e-6, err_msg=path)


def test_runner_on_preference_task(tmp_path):
  require_dsp_data()
  # zero_shot: the raw log-likelihood margin; predictions carry each pair's rewards
  config = experiment.load_config(PREF_SPEC, {**TINY_PREF, "method": "zero_shot"})
  metrics = experiment.train_and_evaluate(config, tmp_path / "zs")
  domains = {f"preference_accuracy/{d}" for d in ("academy", "business", "entertainment",
                                                    "literature")}
  scored = task_metrics(metrics)
  assert scored - domains == {"preference_accuracy"} and scored & domains
  assert all(0 <= metrics[k] <= 1 for k in scored)
  # a pairwise method on a task without pairs is refused
  config = experiment.load_config(SPEC, {**TINY, "method": "dpo"})
  with pytest.raises(ConfigError, match="preference pairs"):
    experiment.train_and_evaluate(config, tmp_path / "bad")
