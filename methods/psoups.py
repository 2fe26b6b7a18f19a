"""Personalized Soups (P-Soups, Jang et al. 2023): one LoRA adapter per preference dimension,
each trained with DPO on that dimension's preference pairs alone; at inference a user's weights
over the dimensions merge the adapters' parameters (post-hoc parameter merging).

The run's groups are the preference dimensions: a training pair belongs to the group of its user
(user granularity) or persona (persona granularity), and only that group's adapter is trained on
it (the shared per-group DPO loss, `dpo_pair_loss`). In DSP a user *is* a domain, so the four domains are
the dimensions. After training every group's row becomes the merge of the dimension adapters
under its weights, `sum_k w_k A_k B_k` exactly (`LoRA.merge_groups`, ranks concatenated):
`weights` (a dict literal `{group: {dimension: weight}}`) for the groups it names, the group's
own dimension (one-hot: its adapter unchanged) for the others.
"""
import ast

import numpy as np

from perjax.errors import ConfigError
from perjax.method import Method, objective_named, register
from perjax.modules.lora import LORA_DEFAULTS, lora_factory
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique


def parse_weights(text) -> dict:
  """The `weights` option: "" (none) or a dict literal {group: {dimension: weight}}."""
  if isinstance(text, dict):
    return text
  if not str(text).strip():
    return {}
  try:
    value = ast.literal_eval(str(text))
  except (ValueError, SyntaxError):
    raise ConfigError(f"psoups.weights must be a dict literal {{group: {{dimension: weight}}}}, "
                      f"got {text!r}") from None
  if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
    raise ConfigError(f"psoups.weights must map each group to {{dimension: weight}}, got {text!r}")
  return value


def weight_matrix(weights: dict, names) -> np.ndarray:
  """[G, G] rows = groups, columns = dimensions (the same names): `weights` where given, else
  the group's own dimension."""
  names = list(names)
  index = {n: i for i, n in enumerate(names)}
  w = np.eye(len(names), dtype=np.float32)
  for group, row in weights.items():
    unknown = sorted({str(group)} - set(index) | {str(d) for d in row} - set(index))
    if unknown:
      raise ConfigError(f"psoups.weights names unknown group(s)/dimension(s) {unknown}; the "
                        f"run's groups are {names}")
    bad = [v for v in row.values() if isinstance(v, bool) or not isinstance(v, (int, float))
           or not np.isfinite(v)]
    if bad or not row:
      raise ConfigError(f"psoups.weights[{group!r}] must give finite numbers, got {row!r}")
    w[index[str(group)]] = 0.0
    for dim, value in row.items():
      w[index[str(group)], index[str(dim)]] = float(value)
  return w


def merge_adapters(model, ctx):
  """Replaces the trained dimension adapters with each group's merge of them."""
  module = getattr(model.personal, ctx.module)
  w = weight_matrix(parse_weights(ctx.options["weights"]), ctx.group_names)
  setattr(model.personal, ctx.module, module.merge_groups(w))
  return model


PSOUPS = register(Method(
    MethodInfo("psoups", Technique.FINETUNING, (Granularity.USER, Granularity.PERSONA), "4.4",
               "Personalized Soups (Jang et al. 2023), merged per-dimension DPO adapters"),
    personal=lora_factory("psoups"), objective=objective_named("dpo_pair_loss"),
    pairwise=True,
    after_training=merge_adapters,
    defaults={"beta": 0.1, **LORA_DEFAULTS, "weights": ""}))
