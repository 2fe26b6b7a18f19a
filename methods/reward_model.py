"""A personalized Bradley-Terry reward model: a scalar head on the last token's final hidden
state, `r_g(x, y) = w_g . h_last`, with per-group LoRA adapters on the decoder and a per-group
head, trained on preference pairs with the Bradley-Terry loss `-log sigmoid(r(chosen) -
r(rejected))` (Ouyang et al. 2022's reward model; per user or persona, the personalized reward
models of the survey). At global granularity it is one shared reward model.

Evaluation scores each pair by the reward itself (preference accuracy: r(chosen) > r(rejected));
with `predict.mode=best_of_n` it also reranks `n` responses sampled at `temperature` for each
prompt and keeps the highest-reward one (`perjax/experiment/best_of_n.py`).
"""
import jax
import jax.numpy as jnp

from perjax.errors import ConfigError
from perjax.method import Method, RewardModel, register
from perjax.models.personal import PERSONAL_DTYPE, Personal, ids_for
from perjax.modules.lora import LORA_DEFAULTS, LoRA, lora_factory
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique
from perjax.training.objectives import pair_loss, pair_rows


class RewardLoRA(LoRA):
  """LoRA tables plus `head [G, d]`: the group's reward direction (zero at the start, so an
  untrained reward is 0 for every response)."""

  def __init__(self, *, groups, dims, rngs, tables=None, **lora):
    super().__init__(groups=groups, dims=dims, rngs=rngs, tables=tables, **lora)
    if tables is None:
      self.head = Personal(jnp.zeros((groups, dims.hidden_size), PERSONAL_DTYPE))


def reward_module(model) -> RewardLoRA:
  stack = getattr(model, "personal", None)
  found = [m for _, m in (stack.modules() if stack is not None else ()) if
           isinstance(m, RewardLoRA)]
  if len(found) != 1:
    raise ConfigError("the reward model needs exactly one reward_model module in the model")
  return found[0]


def last_hidden(model, rows):
  """[B, d] final hidden state (after the final norm) at each row's last real token."""
  hidden, _ = model.forward(jnp.asarray(rows["input_ids"]), group_ids=rows["group_ids"],
                            attention_mask=rows["attention_mask"],
                            level_ids=rows.get("level_ids"), hidden_only=True)
  last = jnp.maximum(jnp.sum(rows["attention_mask"], axis=1) - 1, 0)
  return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0].astype(jnp.float32)


def rewards(model, rows):
  """[B] r_g(x, y) of response rows, each with its group's adapters and head."""
  module = reward_module(model)
  head = module.head[...][ids_for(module, jnp.asarray(rows["group_ids"]), rows.get("level_ids"))]
  return jnp.sum(last_hidden(model, rows) * head, axis=-1)


def bt_loss(chosen, rejected):
  """Per-pair Bradley-Terry loss -log sigmoid(r_c - r_r) and the margins."""
  margin = chosen - rejected
  return -jax.nn.log_sigmoid(margin), margin


def objective(model, batch, rng, num_groups, *, options):
  """Sum over groups of each group's mean pair loss (as DPO's), so groups train independently."""
  del rng, num_groups, options
  rows = pair_rows(batch)
  return pair_loss(*bt_loss(rewards(model, rows["chosen"]), rewards(model, rows["rejected"])),
                   batch)


def reward(options) -> RewardModel:
  n, temperature = int(options["n"]), float(options["temperature"])
  if n < 1:
    raise ConfigError(f"reward_model.n must be >= 1, got {n}")
  if not temperature > 0:
    raise ConfigError(f"reward_model.temperature must be > 0 (sampling), got {temperature}")
  return RewardModel(score=rewards, n=n, temperature=temperature)


REWARD_MODEL = register(Method(
    MethodInfo("reward_model", Technique.FINETUNING, tuple(Granularity), "4.4",
               "personalized Bradley-Terry reward models (e.g. P-RLHF, Li et al. 2024); "
               "best-of-n reranking"),
    personal=lora_factory("reward_model", RewardLoRA), objective=objective, pairwise=True,
    reward=reward,
    defaults={**LORA_DEFAULTS, "n": 4, "temperature": 1.0}))
