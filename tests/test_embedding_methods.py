"""The embedding cells: user_encoder (a shared encoder of the history into prefix embeddings),
user_model (P-RLHF's user model) and pdpo (DPO with the user model, the base as reference)."""
import functools
import math

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import engine_tiny as et
from experiment_tiny import PREF_SPEC, SPEC, TINY, TINY_PREF, require_dsp_data
from perjax.methods.user_encoder import HISTORY, MASK, QUERY, UserEncoder, example_inputs
from perjax.modules.user_embedding import UserModel
from perjax import checkpoint, experiment
from perjax.data.schema import PersonalizedExample, Profile, ProfileItem
from perjax.errors import ConfigError
from perjax.method import compose
from perjax.models.llama import Llama, tiny_llama_config
from perjax.models.personal import ModuleSpec, Personal, stack_builder
from perjax.pools import Pools
from perjax.prompting import PromptContext
from perjax.registry import METHODS, load_plugins
from perjax.training import batching, objectives, step as steplib

load_plugins()
CONFIG = tiny_llama_config(num_layers=2, vocab_size=67, hidden_size=30, intermediate_size=38,
                           num_heads=3, num_kv_heads=1, head_dim=10)
ENC_DIM, ITEMS = 7, 5
encoder_factory = functools.partial(UserEncoder, length=2, items=ITEMS, encoder_dim=ENC_DIM,
                                    attention_dim=5, hidden=11)


def _encoder_model(groups, seed=0):
  return Llama(CONFIG, personal=stack_builder([ModuleSpec("user_encoder", None, encoder_factory)],
                                              {None: groups}), rngs=nnx.Rngs(seed))


def _histories(n, seed=0):
  rng = np.random.default_rng(seed)
  mask = (np.arange(ITEMS)[None] < rng.integers(1, ITEMS + 1, size=(n, 1))).astype(np.float32)
  return {HISTORY: rng.normal(size=(n, ITEMS, ENC_DIM)).astype(np.float32), MASK: mask,
          QUERY: rng.normal(size=(n, ENC_DIM)).astype(np.float32)}


def _numpy_prefix(module, inputs):
  """PPlug's pooling and projector written out in numpy from the module's tables."""
  t = {k: np.asarray(v)[0] for k, v in module.tables().items()}
  out = []
  for h, m, x in zip(inputs[HISTORY], inputs[MASK], inputs[QUERY]):
    s = (x @ t["query"]) @ (h @ t["key"]).T / math.sqrt(t["query"].shape[1])
    a = np.where(m > 0, np.exp(s - s[m > 0].max()), 0.0)
    pooled = (a / a.sum()) @ h
    z = pooled @ t["up"] + t["up_bias"]
    gelu = 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
    out.append((gelu @ t["down"] + t["down_bias"]).reshape(module.prefix_len, -1))
  return np.stack(out)


def test_user_encoder_prefix_comes_from_the_history_not_the_group():
  model = _encoder_model(groups=4)
  module = model.personal.user_encoder
  inputs = _histories(3)
  inputs[HISTORY][1] = inputs[HISTORY][0] + 1.0  # another user: same input, other history
  inputs[MASK][1], inputs[QUERY][1] = inputs[MASK][0], inputs[QUERY][0]
  prefix = lambda groups, level_ids: np.asarray(module.prefix(model.gather_personal(
      np.asarray(groups), level_ids=level_ids)["unlayered"]["user_encoder"]))
  got = prefix([3, 3, 0], inputs)  # group 3: the fallback of users never seen in training
  np.testing.assert_allclose(got, _numpy_prefix(module, inputs), atol=1e-5)
  assert not np.allclose(got[0], got[1], atol=1e-4)  # two unseen users, two histories
  np.testing.assert_array_equal(prefix([0, 1, 2], inputs), got)  # the group does not matter
  # and the prefix reaches the logits
  ids = np.array([[4, 8, 15, 16, 23]] * 2)
  logits = np.asarray(model(ids, group_ids=[3, 3], level_ids={k: v[:2] for k, v in inputs.items()}))
  assert not np.allclose(logits[0], logits[1], atol=1e-5)
  with pytest.raises(ConfigError, match="per-example input"):
    model(ids, group_ids=[3, 3])


def test_user_encoder_has_no_per_group_table():
  counts = {}
  for groups in (2, 7):
    module = _encoder_model(groups).personal.user_encoder
    tables = module.tables()
    assert set(tables) == set(module.shared) and module.groups == 1
    assert all(t.shape[0] == 1 for t in tables.values())
    counts[groups] = sum(t.size for t in tables.values())
  assert counts[2] == counts[7]
  # training on one group's examples moves the shared tables, which serve every group
  model = _encoder_model(groups=3)
  graphdef, state, ptx, btx = steplib.init_train_state(model, optax.adam(1e-2))
  step = steplib.make_train_step(graphdef, ptx, btx, objectives.lm_loss, 3, donate=False)
  batch = et.batch(et.examples({0: 4}), rows=4)
  batch["level_ids"] = {k: v[None] for k, v in _histories(4, seed=1).items()}
  before = {k: np.asarray(v) for k, v in model.personal.user_encoder.tables().items()}
  state, _ = step(state, batch, jax.random.key(0))
  after = steplib.merge_model(graphdef, state).personal.user_encoder.tables()
  assert all(not np.allclose(np.asarray(after[k]), before[k]) for k in ("up", "down", "key"))


class _WordHashEncoder:
  """A stub sentence encoder with an odd size: hashed words, normalised."""
  dim = ENC_DIM

  def encode(self, texts):
    out = np.zeros((len(texts), self.dim), np.float32)
    for i, t in enumerate(texts):
      for w in t.lower().split():
        out[i, sum(map(ord, w)) % self.dim] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _item(i, text):
  return ProfileItem(id=str(i), fields={"text": text}, time=i)


def test_user_encoder_history_is_the_examples_own_visible_pool():
  """Only items the example may see (its own profile, not its user's later items), at most
  `items` of them, embedded by the run's encoder; the input embedded as the query."""
  items = [_item(i, f"word{i} topic{i % 2}") for i in range(8)]
  early = PersonalizedExample(id="a", user_id="u", input="topic0 now", target="x",
                              profile=Profile(tuple(items[:2])))
  late = PersonalizedExample(id="b", user_id="u", input="topic1 later", target="y",
                             profile=Profile(tuple(items)))
  empty = PersonalizedExample(id="c", user_id="v", input="hello", target="z")
  encoder = _WordHashEncoder()
  ctx = PromptContext(options={"items": ITEMS, "encoder_dim": ENC_DIM}, split="test",
                      pools=Pools([early, late, empty]), encoder=lambda: encoder)
  got = example_inputs([early, late, empty], ctx)
  np.testing.assert_array_equal(got[MASK].sum(1), [2, ITEMS, 0])  # early sees its 2 items only
  allowed = encoder.encode([it.text for it in items[:2]])
  for row in got[HISTORY][0, :2]:
    assert np.isclose(np.abs(allowed - row).sum(1), 0).any()
  np.testing.assert_array_equal(got[HISTORY][2], 0)
  np.testing.assert_allclose(got[QUERY], encoder.encode([e.input for e in (early, late, empty)]))
  ctx = PromptContext(options={"items": ITEMS, "encoder_dim": 384}, split="test",
                      pools=Pools([early]), encoder=lambda: encoder)
  with pytest.raises(ConfigError, match="encoder_dim=7"):
    example_inputs([early], ctx)


def _user_model_model(groups, seed=0, **options):
  kw = {"length": 2, "kind": "individual", "clusters": 3, "learn_shared": True, **options}
  return Llama(CONFIG, personal=stack_builder(
      [ModuleSpec("user_model", None, functools.partial(UserModel, **kw))], {None: groups}),
      rngs=nnx.Rngs(seed))


@pytest.mark.parametrize("tx,atol", [("sgd", 1e-6), ("adamw", 5e-6)])
def test_user_model_offsets_train_independently(tx, atol):
  """The engine's independence test on the per-user offsets (the generic embedding held
  fixed): G users trained together equal each trained alone, and no one else's row moves."""
  def model():
    m = _user_model_model(3, learn_shared=False)
    m.tiny_layout = (3, "user_model")  # the engine helpers' compiled-step cache key
    return m
  plan = [{0: 2, 1: 1, 2: 3}, {0: 1, 1: 2}, {0: 2, 1: 2, 2: 1}]
  step_examples = [et.examples(counts, seed=s) for s, counts in enumerate(plan)]
  joint = et.personal_arrays(et.run(model(), tx, [et.batch(e) for e in step_examples])[0])
  initial = et.personal_arrays(et.run(model(), tx, [])[0])
  assert set(joint) == {"personal/user_model/offset"}
  for g in range(3):
    solo_batches = [et.batch([e for e in exs if e[2] == g]) for exs in step_examples
                    if any(e[2] == g for e in exs)]
    solo = et.personal_arrays(et.run(model(), tx, solo_batches)[0])
    for k in joint:
      np.testing.assert_allclose(joint[k][g], solo[k][g], atol=atol, rtol=0)
      for other in set(range(3)) - {g}:
        np.testing.assert_array_equal(solo[k][other], initial[k][other])
    assert not np.allclose(joint["personal/user_model/offset"][g], 0)


def test_user_model_generic_embedding_serves_an_untrained_user():
  """Learned jointly, the generic embedding moves with every user's examples, and a user whose
  offset never trained (the unseen fallback) gets exactly the generic embedding."""
  model = _user_model_model(3)
  module = model.personal.user_model
  generic0 = np.asarray(module.generic[...])
  graphdef, state, ptx, btx = steplib.init_train_state(model, optax.adam(1e-2))
  step = steplib.make_train_step(graphdef, ptx, btx, objectives.lm_loss, 3, donate=False)
  state, _ = step(state, et.batch(et.examples({0: 2, 1: 2})), jax.random.key(0))
  module = steplib.merge_model(graphdef, state).personal.user_model
  generic = np.asarray(module.generic[...])
  assert not np.allclose(generic, generic0)
  prefix = lambda g: np.asarray(module.prefix(
      {"generic": module.generic[...], "offset": module.offset[...][g:g + 1]}))
  np.testing.assert_array_equal(prefix(2), generic)
  assert not np.allclose(prefix(0), generic)


def test_user_model_cluster_mixture_and_export(tmp_path):
  """kind=cluster: a group's embedding is the softmax mixture of the shared clusters (uniform
  at the start); an exported group carries the shared clusters and its own mixing weights."""
  model = _user_model_model(3, kind="cluster")
  module = model.personal.user_model
  clusters = np.asarray(module.clusters[...])[0]  # [K, n, d]
  mixing = np.array([[0.3, -1.0, 2.0], [0.0, 0.0, 0.0], [1.0, 1.0, -2.0]], np.float32)
  module.mixing[...] = mixing
  rows = model.gather_personal(np.array([0, 1, 2]))["unlayered"]["user_model"]
  w = np.exp(mixing) / np.exp(mixing).sum(1, keepdims=True)
  np.testing.assert_allclose(np.asarray(module.prefix(rows)),
                             np.einsum("bk,knd->bnd", w, clusters), atol=1e-6)
  checkpoint.export_group(model, 2, tmp_path / "g2")
  target = _user_model_model(3, kind="cluster")  # the same base, other user-model values
  target.personal.user_model.clusters[...] = target.personal.user_model.clusters[...] * 3 + 1
  target.personal.user_model.mixing[...] = np.ones((3, 3), np.float32) * [[5, 0, 0]]
  checkpoint.load_groups(target, {0: tmp_path / "g2"})
  ids = np.array([[4, 8, 15, 16]])
  np.testing.assert_allclose(np.asarray(target(ids, group_ids=[0])),
                             np.asarray(model(ids, group_ids=[2])), atol=1e-6)


def _pairs(group_counts, seed=0):
  chosen, rejected = et.examples(group_counts, seed=seed), et.examples(group_counts, seed=seed + 1)
  out = []
  for (ci, cm, g), (ri, _, _) in zip(chosen, rejected):
    split = cm.index(1)
    r = ci[:split] + (ri[split:] if len(ri) > split + 1 else ri[-2:])
    out.append(((ci, cm), (r, [0] * split + [1] * (len(r) - split)), g))
  return out


def test_pdpo_reference_is_the_plain_base_model():
  """With the user embedding present (non-zero offsets), the reference logits are the plain
  base model's, and the loss is DPO's against that base."""
  pdpo = METHODS.get("pdpo")
  recipe = compose("pdpo", "user", lambda n: METHODS.get(n).defaults)
  assert recipe.pairwise
  model = Llama(CONFIG, personal=stack_builder(recipe.modules, {None: 3}), rngs=nnx.Rngs(5))
  offset = model.personal.pdpo.offset
  offset[...] = jax.random.normal(jax.random.key(1), offset[...].shape) * 0.5
  base = Llama(CONFIG, rngs=nnx.Rngs(5))
  batch = batching.make_preference_batch(_pairs({0: 2, 2: 1}), et.SEQ, pad_id=0)
  micro = jax.tree.map(lambda x: x[0], batch)
  rows = micro["chosen"]
  ref = objectives.forward(model, rows, base_only=True)
  np.testing.assert_array_equal(np.asarray(ref), np.asarray(objectives.forward(base, rows)))
  assert not np.allclose(np.asarray(objectives.forward(model, rows)), np.asarray(ref))
  beta = pdpo.defaults["beta"]
  loss, _ = recipe.objective(model, micro, jax.random.key(0), 3)
  lp = {k: np.asarray(objectives.sequence_logprobs(model, micro[k])) for k in ("chosen",
                                                                              "rejected")}
  lr = {k: np.asarray(objectives.sequence_logprobs(base, micro[k])) for k in ("chosen",
                                                                             "rejected")}
  margin = (lp["chosen"] - lr["chosen"]) - (lp["rejected"] - lr["rejected"])
  per_pair = np.log1p(np.exp(-beta * margin))
  groups = np.asarray(micro["group_ids"])
  want = sum(per_pair[groups == g].mean() for g in np.unique(groups))
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)


# -- end to end: each method at every granularity it declares, on tiny-llama ----------------
def _run(spec, overrides, tmp_path):
  config = experiment.load_config(spec, overrides)
  return experiment.train_and_evaluate(config, tmp_path)


@pytest.mark.parametrize("granularity", ["user", "persona", "global"])
def test_user_encoder_runs_end_to_end(granularity, tmp_path):
  metrics = _run(SPEC, {**TINY, "method": "user_encoder", "granularity": granularity,
                        "methods.user_encoder.items": 3, "methods.user_encoder.hidden": 9},
                 tmp_path)
  assert "accuracy" in metrics
  rows = (tmp_path / "predictions.jsonl").read_text().splitlines()
  assert len(rows) == TINY["data.max_test"]


@pytest.mark.parametrize("granularity,kind", [("user", "individual"), ("persona", "individual"),
                                              ("persona", "cluster")])
def test_user_model_runs_end_to_end(granularity, kind, tmp_path):
  metrics = _run(SPEC, {**TINY, "method": "user_model", "granularity": granularity,
                        "methods.user_model.kind": kind, "methods.user_model.length": 2},
                 tmp_path)
  assert "accuracy" in metrics


@pytest.mark.parametrize("granularity", ["user", "persona"])
def test_pdpo_runs_end_to_end(granularity, tmp_path):
  require_dsp_data()
  metrics = _run(PREF_SPEC, {**TINY_PREF, "method": "pdpo", "granularity": granularity,
                             "methods.pdpo.length": 2}, tmp_path)
  assert 0.0 <= metrics["preference_accuracy"] <= 1.0
