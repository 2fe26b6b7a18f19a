"""Personal modules as plugins: every registered parameter method acts and trains through its
hook points, (IA)^3 against scaled base weights, composition across levels, the base reference."""
import functools

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from perjax.methods.ia3 import IA3
from perjax.modules.lora import LoRA
from perjax.errors import ConfigError
from perjax.method import compose
from perjax.models.llama import Llama, tiny_llama_config
from perjax.models.personal import ModuleSpec, PersonalModule, PersonalStack, stack_builder
from perjax.registry import METHODS, load_plugins
from perjax.training import batching, objectives, step as steplib
from family_configs import tiny_family_config
from perjax.models.families import SUPPORTED
from personal_tiny import personal_arrays

load_plugins()
PARAMETER_METHODS = [n for n, m in METHODS.items() if m.personal is not None]
CONFIG = tiny_llama_config(num_layers=2, vocab_size=67, hidden_size=30, intermediate_size=38,
                           num_heads=3, num_kv_heads=1, head_dim=10)
IDS = np.array([[4, 8, 15, 16, 23, 42, 5], [9, 10, 11, 12, 13, 14, 15]], np.int32)
# every parameter method on the Llama config; the main kinds on each other family's
ACROSS_FAMILIES = ("lora", "ia3", "soft_prompt", "user_encoder", "full_ft")
METHOD_FAMILY = [(n, None) for n in PARAMETER_METHODS] + [
    (n, f) for f in SUPPORTED if f != "llama" for n in ACROSS_FAMILIES]


def _model(specs, groups=2, seed=0, config=CONFIG):
  return Llama(config, personal=stack_builder(specs, {None: groups, "global": 1}),
               rngs=nnx.Rngs(seed))


def _batch(group):
  rows = [(ids.tolist(), [0, 0, 0] + [1] * 4, group) for ids in IDS]
  return batching.make_batch(rows, 7, pad_id=0)


def _logits(model, group, inputs=None):
  return np.asarray(model(IDS, group_ids=[group] * len(IDS), level_ids=inputs or None))


def _inputs(model) -> dict:
  """Random per-example inputs of the modules that read some (`PersonalModule.inputs`)."""
  rng = np.random.default_rng(0)
  return {k: rng.normal(size=(len(IDS),) + shape).astype(np.float32)
          for _, m in model.personal.modules() for k, shape in m.inputs.items()}


@pytest.mark.parametrize("name,family", METHOD_FAMILY)
def test_parameter_method_changes_outputs_of_its_trained_group_only(name, family):
  """Conformance: the method's module reaches the output through its hooks, gets gradients,
  and training group 0 leaves group 1's outputs untouched (its own rows, where the module has
  tables shared by every group); on each decoder family (None: the Llama config)."""
  method = METHODS.get(name)
  recipe = compose(name, method.info.granularities[0], lambda n: METHODS.get(n).defaults)
  model = _model(recipe.modules, config=CONFIG if family is None else tiny_family_config(family))
  inputs = _inputs(model)
  before = {g: _logits(model, g, inputs) for g in (0, 1)}
  graphdef, state, ptx, btx = steplib.init_train_state(model, optax.adam(5e-2))
  step = steplib.make_train_step(graphdef, ptx, btx, objectives.lm_loss, 2, donate=False)
  batch = _batch(0)
  if inputs:
    batch["level_ids"] = {k: v[None] for k, v in inputs.items()}
  for i in range(3):
    state, metrics = step(state, batch, jax.random.key(i))
    assert np.isfinite(float(metrics["loss"]))
  trained = steplib.merge_model(graphdef, state)
  assert not np.allclose(_logits(trained, 0, inputs), before[0], atol=1e-6)
  shared = model.personal.shared_tables()
  if not shared:
    np.testing.assert_array_equal(_logits(trained, 1, inputs), before[1])
  own = lambda m: {f"{n}/{k}": np.asarray(t)[1] for n, mod in m.personal.modules()
                   for k, t in mod.tables().items() if k not in shared.get(n, ())}
  for k, row in own(model).items():
    np.testing.assert_array_equal(own(trained)[k], row, err_msg=k)


def _ia3_model(seed=3):
  model = _model([ModuleSpec("ia3", None, IA3)], groups=2, seed=seed)
  for t in model.personal.ia3.targets:  # non-trivial scales per group, layer and feature
    var = getattr(model.personal.ia3, t)
    var[...] = 1.0 + 0.5 * jax.random.normal(jax.random.key(hash(t) % 1000), var[...].shape)
  return model


def test_ia3_equals_the_base_with_scaled_weight_columns():
  """Scaling k, v and up outputs by l is the base model with those weights' output columns
  scaled by l: an independent reference built from plain weights."""
  model = _ia3_model()
  base = Llama(CONFIG, rngs=nnx.Rngs(3))
  for g in (0, 1):
    scaled = Llama(CONFIG, rngs=nnx.Rngs(3))
    for t in ("k", "v", "up"):
      w = getattr(scaled.layers, t)
      w[...] = w[...] * getattr(model.personal.ia3, t)[...][g][:, None, :]
    np.testing.assert_allclose(_logits(model, g), np.asarray(scaled(IDS)), atol=2e-5)
  # untrained (all ones) is exactly the base
  fresh = _model([ModuleSpec("ia3", None, IA3)], groups=2, seed=3)
  np.testing.assert_array_equal(_logits(fresh, 1), np.asarray(base(IDS)))


def test_global_module_plus_per_user_residual():
  """`lora@global+lora`: a shared row for everyone under each user's own adapter."""
  recipe = compose("lora@global+lora", "user",
                   lambda n: {"rank": 2, "alpha": 4.0, "targets": "q,v"})
  assert [(m.name, m.level) for m in recipe.modules] == [("lora_at_global", "global"),
                                                         ("lora", None)]
  assert recipe.levels == ("global",)
  model = _model(recipe.modules, groups=3)
  assert model.personal.lora_at_global.groups == 1 and model.personal.lora.groups == 3
  base = [_logits(model, g) for g in range(3)]
  model.personal.lora_at_global.q_b[...] = jax.random.normal(
      jax.random.key(1), model.personal.lora_at_global.q_b[...].shape) * 0.3
  shared = [_logits(model, g) for g in range(3)]
  assert not np.allclose(shared[0], base[0])
  for g in (1, 2):  # the global row acts on every group alike
    np.testing.assert_array_equal(shared[g], shared[0])
  # one step on group 0: the global row and group 0's row move, groups 1-2's own rows do not
  graphdef, state, ptx, btx = steplib.init_train_state(model, optax.sgd(0.5))
  step = steplib.make_train_step(graphdef, ptx, btx, objectives.lm_loss, 3, donate=False)
  before = personal_arrays(model)
  state, _ = step(state, _batch(0), jax.random.key(0))
  after = {"/".join(map(str, p)): np.asarray(v) for p, v in nnx.to_flat_state(state.personal)}
  assert not np.allclose(after["personal/lora_at_global/q_a"], before["personal/lora_at_global/q_a"])
  assert not np.allclose(after["personal/lora/q_b"][0], before["personal/lora/q_b"][0])
  np.testing.assert_array_equal(after["personal/lora/q_b"][1:], before["personal/lora/q_b"][1:])


def test_base_only_is_exactly_the_base_model_for_every_composition():
  """DPO's reference: every module off, a prefix included, equals the plain base model."""
  recipe = compose("soft_prompt+ia3+lora", "user", lambda n: METHODS.get(n).defaults)
  model = _model(recipe.modules, groups=2, seed=5)
  assert model.prefix_len == METHODS.get("soft_prompt").defaults["length"]
  base = Llama(CONFIG, rngs=nnx.Rngs(5))
  rows = {k: v[0] for k, v in _batch(1).items()}
  got = objectives.sequence_logprobs(model, rows, base_only=True)
  want = objectives.sequence_logprobs(base, rows)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert not np.allclose(np.asarray(objectives.sequence_logprobs(model, rows)), np.asarray(want))


def test_compose_refuses_only_real_conflicts():
  options = lambda n: METHODS.get(n).defaults
  compose("rag+soft_prompt+lora+ia3", "persona", options)  # different kinds stack
  compose("lora@global+lora", "persona", options)  # the same kind at two levels
  with pytest.raises(ConfigError, match="appears twice"):
    compose("lora+lora", "user", options)
  with pytest.raises(ConfigError, match="same level"):
    compose("lora@user+lora", "user", options)
  recipe = compose("rag@global+lora", "user", options)  # global retrieval, per-user adapter
  assert recipe.prompt_levels == {"rag": "global"} and recipe.modules[0].level is None
  assert compose("rag@user+lora", "user", options).prompt_levels == {}
  with pytest.raises(ConfigError, match="unknown granularity"):
    compose("lora@everyone", "user", options)


def test_unknown_hook_points_and_targets_are_config_errors():
  class Nowhere(PersonalModule):
    hooks = ("proj.qkv",)

    def __init__(self, *, groups, dims, rngs):
      del dims, rngs
      self.t = nnx.Param(np.zeros((groups, 1)))

  with pytest.raises(ConfigError, match="unknown hook point"):
    PersonalStack({"x": Nowhere(groups=2, dims=None, rngs=None)})
  with pytest.raises(ConfigError, match="unknown or empty target"):
    compose("lora", "user", lambda n: {"rank": 2, "alpha": 4.0, "targets": "q,attn"})


def test_export_and_load_a_composed_user(tmp_path):
  from perjax import checkpoint
  specs = compose("lora@global+ia3", "user", lambda n: METHODS.get(n).defaults).modules
  source = _model(specs, groups=3, seed=2)
  source.personal.ia3.v[...] = source.personal.ia3.v[...].at[2].set(1.7)
  source.personal.lora_at_global.v_b[...] = source.personal.lora_at_global.v_b[...] + 0.1
  checkpoint.export_group(source, 2, tmp_path / "u2")
  target = _model(specs, groups=3, seed=2)
  checkpoint.load_groups(target, {0: tmp_path / "u2"})
  np.testing.assert_array_equal(_logits(target, 0), _logits(source, 2))
  loras = functools.partial(LoRA, rank=2, targets=("q",))
  with pytest.raises(ConfigError, match="modules"):
    checkpoint.load_groups(_model([ModuleSpec("lora", None, loras)]), {0: tmp_path / "u2"})


def test_a_persona_module_under_per_user_rows_in_training_and_decoding():
  """`lora@persona+lora`: each example reads its persona's row (level_ids) and its own; an
  unseen user (an untrained own row) still gets its persona's. Cached decoding with level ids
  equals the full forward pass."""
  from perjax.generation import Generator, SamplingConfig
  recipe = compose("lora@persona+lora", "user", lambda n: {"rank": 2, "alpha": 4.0,
                                                            "targets": "q,v"})
  assert recipe.levels == ("persona",)
  model = Llama(CONFIG, personal=stack_builder(recipe.modules, {None: 3, "persona": 2}),
                rngs=nnx.Rngs(4))
  persona = model.personal.lora_at_persona
  persona.v_b[...] = jax.random.normal(jax.random.key(2), persona.v_b[...].shape) * 0.5
  logits = lambda g, p: np.asarray(model(IDS[:1], group_ids=[g], level_ids={"persona": [p]}))
  np.testing.assert_array_equal(logits(2, 1), logits(0, 1))  # own rows are zero: persona decides
  assert not np.allclose(logits(2, 1), logits(2, 0))
  with pytest.raises(ConfigError, match="level 'persona'"):
    model(IDS[:1], group_ids=[0])
  gen = Generator(model, stop_at_eos=False)
  prompts, groups, personas = [[5, 17, 30, 4], [9, 9, 40]], [2, 2], [1, 0]
  out = gen.generate_ids(prompts, group_ids=groups, level_ids={"persona": personas},
                         sampling=SamplingConfig(max_new_tokens=4))
  for prompt, g, p, got in zip(prompts, groups, personas, out):
    ids = list(prompt)
    for _ in range(4):
      ids.append(int(np.argmax(np.asarray(model(np.array([ids]), group_ids=[g],
                                                 level_ids={"persona": [p]}))[0, -1])))
    assert got == ids[len(prompt):]
  # one step on persona 0's examples moves persona 0's row only
  graphdef, state, ptx, btx = steplib.init_train_state(model, optax.sgd(0.5))
  step = steplib.make_train_step(graphdef, ptx, btx, objectives.lm_loss, 3, donate=False)
  batch = _batch(1)
  batch["level_ids"] = {"persona": np.zeros_like(batch["group_ids"])}
  new, _ = step(state, batch, jax.random.key(0))
  old_b = np.asarray(state.personal["personal"]["lora_at_persona"]["v_b"][...])
  new_b = np.asarray(new.personal["personal"]["lora_at_persona"]["v_b"][...])
  assert not np.allclose(new_b[0], old_b[0])
  np.testing.assert_array_equal(new_b[1], old_b[1])


def test_a_per_example_input_named_like_a_level_is_refused():
  """Ids of other levels and per-example inputs are separate fields: an input cannot silently
  replace a level's ids in the mapping the model reads."""
  from perjax.per_example import PerExample
  ids, emb = np.array([0, 1]), np.ones((2, 3))
  both = PerExample(level_ids={"persona": ids}, inputs={"user_encoder/history": emb})
  model = both.for_model()
  assert model["persona"].dtype == np.int32 and model["user_encoder/history"].dtype == np.float32
  with pytest.raises(ConfigError, match="named like the level 'persona'"):
    PerExample(level_ids={"persona": ids}, inputs={"persona": emb})
