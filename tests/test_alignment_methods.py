"""Fine-tuning and alignment methods: exact adapter merging (Personalized Soups), DPO's reference
is the base, the Bradley-Terry reward model against a reference computed pair by pair,
best-of-n reranking, and full fine-tuning (the base at global, independent copies per persona)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from perjax.methods.full_ft import FullDelta, memory_warning
from perjax.methods.psoups import merge_adapters, parse_weights, weight_matrix
from perjax.methods.reward_model import RewardLoRA, bt_loss, last_hidden, rewards
from perjax.modules.lora import LoRA
from perjax import checkpoint
from perjax.errors import ConfigError
from perjax.method import AfterTraining, RewardModel, compose
from perjax.models.llama import Llama, tiny_llama_config
from perjax.models.personal import ModuleSpec, stack_builder
from perjax.registry import METHODS, load_plugins
from perjax.training import batching, objectives, step as steplib

load_plugins()
CONFIG = tiny_llama_config(num_layers=2, vocab_size=67, hidden_size=30, intermediate_size=38,
                           num_heads=3, num_kv_heads=1, head_dim=10)
IDS = np.array([[4, 8, 15, 16, 23, 42, 5], [9, 10, 11, 12, 13, 14, 15]], np.int32)
options = lambda name: METHODS.get(name).defaults


def _model(factory, groups, seed=0, name="m"):
  return Llama(CONFIG, personal=stack_builder([ModuleSpec(name, None, factory)], {None: groups}),
               rngs=nnx.Rngs(seed))


def _logits(model, group):
  return np.asarray(model(IDS, group_ids=[group] * len(IDS)))


def _randomize(module, seed=1, scale=0.3):
  key = jax.random.key(seed)
  for name, var in vars(module).items():
    if name.endswith(("_b", "head")):
      key, sub = jax.random.split(key)
      var[...] = jax.random.normal(sub, var[...].shape) * scale


def _lora_model(groups=3, rank=2, seed=0):
  model = _model(functools.partial(LoRA, rank=rank, alpha=5.0, targets=("q", "v", "down")),
                 groups, seed)
  _randomize(model.personal.m, seed + 1)
  return model


def _deltas(module):
  """{target: [G, L, d_in, d_out]} float64 A B * scale of every row."""
  out = {}
  for t in module.targets:
    a = np.asarray(getattr(module, f"{t}_a")[...], np.float64)
    b = np.asarray(getattr(module, f"{t}_b")[...], np.float64)
    out[t] = np.einsum("gldr,glro->gldo", a, b) * module.scale
  return out


# -- merge_groups / Personalized Soups --------------------------------------------------------
def test_one_hot_merge_reproduces_the_source_rows():
  model = _lora_model()
  want = {g: _logits(model, g) for g in range(3)}
  source = model.personal.m
  merged = source.merge_groups(np.eye(3, dtype=np.float32)[[2, 0, 0, 1]])  # 4 new rows
  assert merged.groups == 4 and merged.rank == 3 * source.rank
  assert merged.scale == pytest.approx(source.scale)
  for new, old in enumerate([2, 0, 0, 1]):
    for t, d in _deltas(merged).items():
      np.testing.assert_array_equal(d[new], _deltas(source)[t][old])
  model.personal.m = merged
  for new, old in enumerate([2, 0, 0, 1]):
    np.testing.assert_allclose(_logits(model, new), want[old], rtol=0, atol=1e-6)


def test_merge_is_the_weighted_sum_of_deltas_and_exports_like_any_adapter(tmp_path):
  model = _lora_model(seed=3)
  source = model.personal.m
  w = np.array([[0.5, 0.25, 0.25], [0.0, 1.5, -0.5]], np.float32)
  merged = source.merge_groups(w)
  src = _deltas(source)
  for t, d in _deltas(merged).items():
    np.testing.assert_allclose(d, np.einsum("nk,kldo->nldo", w, src[t]), rtol=1e-5, atol=1e-7)
  model.personal.m = merged
  logits = _logits(model, 1)
  checkpoint.export_group(model, 1, tmp_path / "u")
  fresh = _model(functools.partial(LoRA, rank=merged.rank, alpha=merged.alpha,
                                   targets=merged.targets), 2, seed=3)
  checkpoint.load_groups(fresh, {0: tmp_path / "u"})
  np.testing.assert_array_equal(_logits(fresh, 0), logits)
  with pytest.raises(ConfigError, match="weights must be"):
    source.merge_groups(np.ones((2, 4)))


def test_psoups_weights_from_config_and_one_hot_otherwise():
  names = ("academy", "business", "literature")
  w = weight_matrix(parse_weights("{'business': {'academy': 0.5, 'literature': 0.5}}"), names)
  np.testing.assert_array_equal(w, [[1, 0, 0], [0.5, 0, 0.5], [0, 0, 1]])
  np.testing.assert_array_equal(weight_matrix(parse_weights(""), names), np.eye(3))
  for bad, match in (("{'nobody': {'academy': 1}}", "unknown"), ("[1, 2]", "map each group"),
                     ("{'academy': {'business': 'x'}}", "finite numbers"), ("{", "dict literal")):
    with pytest.raises(ConfigError, match=match):
      weight_matrix(parse_weights(bad), names)
  model = _lora_model()
  before = _deltas(model.personal.m)
  ctx = AfterTraining({"weights": "{'business': {'academy': 0.5, 'literature': 0.5}}"}, "m",
                      names)
  after = _deltas(merge_adapters(model, ctx).personal.m)
  for t in before:
    np.testing.assert_allclose(after[t][1], 0.5 * (before[t][0] + before[t][2]), atol=1e-7)
    np.testing.assert_allclose(after[t][0], before[t][0], atol=1e-7)


# -- DPO's reference --------------------------------------------------------------------------
def test_dpo_reference_is_the_plain_base_with_a_soft_prompt():
  """soft_prompt+dpo: the objective's reference log-probs are those of the base model alone
  (the soft prompt is switched off too), checked through the loss it reports."""
  recipe = compose("soft_prompt+dpo", "user", options)
  model = Llama(CONFIG, personal=stack_builder(recipe.modules, {None: 2}), rngs=nnx.Rngs(4))
  base = Llama(CONFIG, rngs=nnx.Rngs(4))
  rows = lambda ids: [(list(seq), [0, 0, 0] + [1] * (len(seq) - 3)) for seq in ids]
  pairs = [(c, r, 1) for c, r in zip(rows(IDS), rows(IDS[:, ::-1]))]
  batch = jax.tree.map(lambda x: x[0], batching.make_preference_batch(pairs, 7, pad_id=0))
  loss, _ = recipe.objective(model, batch, jax.random.key(0), 2)
  pol = [np.asarray(objectives.sequence_logprobs(model, batch[k])) for k in ("chosen", "rejected")]
  ref = [np.asarray(objectives.sequence_logprobs(base, batch[k])) for k in ("chosen", "rejected")]
  margin = (pol[0] - ref[0]) - (pol[1] - ref[1])
  assert np.abs(margin).max() > 1e-3  # the soft prompt moves the policy off the base
  want = np.mean(np.log1p(np.exp(-options("dpo")["beta"] * margin)))
  assert float(loss) == pytest.approx(want, rel=1e-5)


# -- reward model -----------------------------------------------------------------------------
def _reward_model(groups=2, seed=0):
  model = _model(functools.partial(RewardLoRA, rank=2, alpha=4.0, targets=("q", "v")), groups,
                 seed, name="reward_model")
  _randomize(model.personal.reward_model, seed + 7)
  return model


def _pair_batch(pairs):
  return jax.tree.map(lambda x: x[0], batching.make_preference_batch(pairs, 9, pad_id=0))


def test_reward_is_the_head_on_the_last_real_token():
  model = _reward_model()
  ids = [3, 9, 27, 14, 5]
  padded = {k: v[0] for k, v in batching.make_batch([(ids, [0, 0, 1, 1, 1], 1)], 9, 0).items()}
  got = float(rewards(model, padded)[0])
  # the same sequence alone, unpadded: its last position
  hidden, _ = model.forward(jnp.asarray([ids]), attention_mask=jnp.ones((1, 5), jnp.int32),
                            group_ids=jnp.asarray([1]), hidden_only=True)
  want = float(np.dot(np.asarray(hidden[0, -1]), np.asarray(model.personal.reward_model.head[1])))
  assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
  assert abs(got - float(rewards(model, {**padded, "group_ids": jnp.asarray([0])})[0])) > 1e-4


def test_bradley_terry_loss_against_a_pair_by_pair_reference():
  model = _reward_model(groups=3)
  rng = np.random.default_rng(0)
  pairs = []
  for g in (0, 0, 2, 0, 2):
    n = int(rng.integers(4, 9))
    c, r = rng.integers(3, 67, n).tolist(), rng.integers(3, 67, n).tolist()
    mask = [0, 0] + [1] * (n - 2)
    pairs.append(((c, mask), (r, mask), g))
  batch = _pair_batch(pairs)
  loss, metrics = METHODS.get("reward_model").objective(model, batch, None, 3, options={})
  # reference: each response scored alone, -log sigmoid by hand, sum over groups of the mean
  one = lambda seq, g: float(rewards(model, {k: v[0] for k, v in batching.make_batch(
      [(seq[0], seq[1], g)], len(seq[0]), 0).items()})[0])
  per_group = {}
  for c, r, g in pairs:
    margin = one(c, g) - one(r, g)
    per_group.setdefault(g, []).append(np.log1p(np.exp(-margin)))
  want = sum(np.mean(v) for v in per_group.values())
  assert float(loss) == pytest.approx(want, rel=1e-5)
  losses, margin = bt_loss(jnp.array([2.0, -1.0]), jnp.array([0.5, 0.5]))
  np.testing.assert_allclose(losses, np.log1p(np.exp(-np.array([1.5, -1.5]))), rtol=1e-6)


def test_reward_model_training_separates_its_pairs():
  model = _reward_model(groups=1, seed=2)
  rng = np.random.default_rng(1)
  pairs = [((rng.integers(3, 30, 6).tolist(), [0, 0, 1, 1, 1, 1]),
            (rng.integers(30, 67, 6).tolist(), [0, 0, 1, 1, 1, 1]), 0) for _ in range(6)]
  batch = jax.tree.map(lambda x: x[None], _pair_batch(pairs))
  objective = functools.partial(METHODS.get("reward_model").objective, options={})
  graphdef, state, ptx, btx = steplib.init_train_state(model, optax.adam(3e-2))
  step = steplib.make_train_step(graphdef, ptx, btx, objective, 1, donate=False)
  first = None
  for i in range(25):
    state, m = step(state, batch, jax.random.key(i))
    first = float(m["loss"]) if first is None else first
  assert float(m["loss"]) < 0.5 * first and float(m["reward_accuracy"]) == 1.0


# -- best of n --------------------------------------------------------------------------------
def test_best_of_n_keeps_the_highest_scoring_candidate():
  """The rerank against an independent score (the response's token count): the longest
  candidate, as the codec encodes it, wins."""
  from perjax.experiment import best_of_n, kinds
  from perjax.experiment.encoding import Codec
  from perjax.experiment.settings import EvalSettings
  from perjax.generation import Generator
  from perjax.models.decoder_loading import load_decoder
  from perjax.prompting import Prompt
  model, tokenizer = load_decoder("tiny-llama", progress=False)
  generator = Generator(model, tokenizer)
  codec = Codec(generator, chat=True)
  length = lambda model, rows: jnp.sum(rows["loss_mask"], axis=1).astype(jnp.float32)
  settings = EvalSettings(batch_size=4, max_new_tokens=12, seq_len=96,
                          reward=RewardModel(score=length, n=5, temperature=1.5))
  prompts = [Prompt("hello there"), Prompt("what is a tiny model"), Prompt("x")]
  candidates = best_of_n.sample(generator, codec, prompts, [0, 0, 0], settings)
  assert all(len(c) == 5 for c in candidates)
  assert any(len(set(c)) > 1 for c in candidates)  # sampling, not greedy
  best, rewards_ = best_of_n.rerank(generator, codec, prompts, candidates, [0, 0, 0], settings,
                                    kinds.score)
  for texts, b, rs in zip(candidates, best, rewards_):
    counts = [len(codec.target_ids(t)) for t in texts]
    np.testing.assert_array_equal(rs, counts)
    assert counts[b] == max(counts)
  m = best_of_n.metrics(rewards_, best)
  assert m["best_of_n_reward"] >= m["sample_reward"]


def test_best_of_n_run_records_its_choice(tmp_path):
  from experiment_tiny import PREF_SPEC, TINY_PREF, require_dsp_data
  from perjax import experiment
  require_dsp_data()
  overrides = {**TINY_PREF, "method": "reward_model", "predict.mode": "best_of_n",
               "methods.reward_model.n": 2, "methods.reward_model.rank": 2,
               "eval.max_new_tokens": 4}
  overrides.pop("methods.dpo.rank")
  metrics = experiment.train_and_evaluate(experiment.load_config(PREF_SPEC, overrides), tmp_path)
  assert {"preference_accuracy", "best_of_n_reward", "sample_reward"} <= set(metrics)
  import json
  records = [json.loads(l) for l in (tmp_path / "predictions.jsonl").read_text().splitlines()]
  for r in records:
    assert r["best_of_n"] == r["candidates"][int(np.argmax(r["candidate_rewards"]))]
  bad = experiment.load_config(PREF_SPEC, {**TINY_PREF, "method": "dpo",
                                           "predict.mode": "best_of_n"})
  with pytest.raises(ConfigError, match="reward model"):
    experiment.train_and_evaluate(bad, tmp_path / "bad")


# -- full fine-tuning -------------------------------------------------------------------------
def _lm_batch(groups):
  rows = [(ids.tolist(), [0, 0, 0] + [1] * 4, g) for ids, g in zip(IDS, groups)]
  return batching.make_batch(rows, 7, pad_id=0)


def test_full_ft_at_global_trains_the_base():
  recipe = compose("full_ft", "global", options)
  assert recipe.train_base and not recipe.modules and recipe.trains
  model = Llama(CONFIG, rngs=nnx.Rngs(0))
  weights = lambda m: [np.asarray(w) for w in jax.tree.leaves(nnx.state(m, nnx.Param))]
  before = weights(model)
  graphdef, state, ptx, btx = steplib.init_train_state(model, optax.sgd(0.1), train_base=True)
  step = steplib.make_train_step(graphdef, ptx, btx, recipe.objective, 1, donate=False)
  state, _ = step(state, _lm_batch([0, 0]), jax.random.key(0))
  after = weights(steplib.merge_model(graphdef, state))
  assert len(after) == len(before) > 5
  assert all(not np.allclose(a, b) for a, b in zip(after, before))  # every weight moved


def test_full_ft_persona_copies_are_independent_full_copies():
  recipe = compose("full_ft", "persona", options)
  assert not recipe.train_base and len(recipe.modules) == 1
  model = Llama(CONFIG, personal=stack_builder(recipe.modules, {None: 3}), rngs=nnx.Rngs(0))
  base = Llama(CONFIG, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(_logits(model, 2), np.asarray(base(IDS)))  # zero deltas
  graphdef, state, ptx, btx = steplib.init_train_state(model, optax.sgd(0.1))
  step = steplib.make_train_step(graphdef, ptx, btx, recipe.objective, 3, donate=False)
  state, _ = step(state, _lm_batch([1, 1]), jax.random.key(0))
  trained = steplib.merge_model(graphdef, state)
  np.testing.assert_array_equal(_logits(trained, 0), _logits(model, 0))
  np.testing.assert_array_equal(_logits(trained, 2), _logits(model, 2))
  assert not np.allclose(_logits(trained, 1), _logits(model, 1))
  # persona 1's copy is the base trained alone on its examples (projections; the rest frozen):
  # one SGD step on W + D equals one on W, since dL/dD = dL/dW
  module = trained.personal.full_ft
  for p in ("q", "down"):
    assert np.abs(np.asarray(getattr(module, f"{p}_delta")[1])).max() > 0
  ref = Llama(CONFIG, rngs=nnx.Rngs(0))
  batch = {k: v[0] for k, v in _lm_batch([0, 0]).items()}
  grads = nnx.grad(lambda m: objectives.lm_loss(m, batch, None, 1)[0])(ref)
  np.testing.assert_allclose(np.asarray(module.q_delta[1]),
                             -0.1 * np.asarray(grads.layers.q[...]), rtol=1e-4, atol=1e-7)


def test_full_ft_memory_warning():
  assert memory_warning(4, 1_000_000, 64 * 2**20) is None
  line = memory_warning(4, 1_000_000, 16 * 2**20)
  assert "full_ft" in line and "\n" not in line and "4 full copies" in line
  assert memory_warning(4, 10**9, None) is None


def test_psoups_run_merges_after_training_and_one_hot_users_score_as_dpo(tmp_path):
  """psoups and dpo@user train the same per-domain adapters; after the merge a user on their
  own dimension (one-hot) scores every pair as dpo does, a mixed user differently."""
  import json
  from experiment_tiny import PREF_SPEC, TINY_PREF, require_dsp_data
  from perjax import experiment
  require_dsp_data()
  base = {**TINY_PREF, "methods.psoups.rank": 3, "data.max_test": 12}
  mixed = "{'academy': {'academy': 0.5, 'literature': 0.5}}"
  runs = {}
  for name, extra in (("dpo", {}), ("psoups", {"methods.psoups.weights": mixed})):
    config = experiment.load_config(PREF_SPEC, {**base, "method": name, **extra})
    metrics = experiment.train_and_evaluate(config, tmp_path / name)
    assert any(k.startswith("preference_accuracy/") for k in metrics)
    runs[name] = [json.loads(l) for l in (tmp_path / name / "predictions.jsonl").read_text()
                  .splitlines()]
  for d, p in zip(runs["dpo"], runs["psoups"]):
    assert d["id"] == p["id"]
    close = np.isclose([d["chosen_reward"], d["rejected_reward"]],
                       [p["chosen_reward"], p["rejected_reward"]], rtol=0, atol=1e-4).all()
    assert close == (d["user_id"] != "academy"), d


def test_full_ft_resumes_its_trained_base_from_a_checkpoint(tmp_path):
  """An interrupted full fine-tuning run (base weights and their optimizer state in the
  checkpoint) continues exactly as an uninterrupted one."""
  from perjax.training.settings import TrainSettings
  from perjax.training.loop import train
  rows = [(ids.tolist(), [0, 0, 0] + [1] * 4) for ids in np.concatenate([IDS, IDS[:, ::-1]])]
  recipe = compose("full_ft", "global", options)
  settings = lambda steps: TrainSettings(steps=steps, batch_size=2, seq_len=7, lr=1e-2,
                                         checkpoint_every=2)
  run = lambda steps, workdir: train(Llama(CONFIG, rngs=nnx.Rngs(0)), rows, [0] * 4,
                                     batching.make_batch, recipe.objective, 1, settings(steps),
                                     workdir, train_base=True)
  whole = run(4, tmp_path / "whole")
  run(2, tmp_path / "split")
  resumed = run(4, tmp_path / "split")
  np.testing.assert_array_equal(_logits(resumed, 0), _logits(whole, 0))
  assert not np.allclose(_logits(whole, 0), np.asarray(Llama(CONFIG, rngs=nnx.Rngs(0))(IDS)))
