"""(IA)^3 per group (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and
Cheaper than In-Context Learning"): learned vectors that rescale the keys, the values and the MLP's
inner activation, one set per group.

A personal module at the "proj.k", "proj.v" and "proj.up" hook points: `y * l_g` with
`l [G, L, d_out]` initialised to ones, so an untrained row is exactly the base model. Scaling the
up projection's output scales `silu(gate) * up` elementwise, which is (IA)^3's `l_ff`. A few
thousand parameters per user on SmolLM2-135M, against LoRA's hundreds of thousands.
"""
import functools

import jax.numpy as jnp

from perjax.method import Method, register
from perjax.models.personal import PERSONAL_DTYPE, Personal, PersonalModule, parse_targets
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique


class IA3(PersonalModule):
  """`{t} [G, L, d_out]` scaling vectors per target projection t."""

  def __init__(self, *, groups, dims, rngs, targets=("k", "v", "up")):
    del rngs  # deterministic initialisation
    self.targets = tuple(targets)
    self.hooks = tuple(f"proj.{t}" for t in self.targets)
    self.layered = self.targets
    for t in self.targets:
      dout = dims.projections[t][1]
      setattr(self, t, Personal(jnp.ones((groups, dims.num_layers, dout), PERSONAL_DTYPE)))

  def project(self, name, y, x, rows):
    return y * rows[name][:, None, :]  # [B, 1, d_out] over the time axis

  def describe(self):
    return {"targets": list(self.targets)}

  def merge_into(self, layers, rows):
    out = dict(layers)
    for t in self.targets:  # a scale of the output features: the weight's columns, the bias
      out[t] = out[t] * rows[t][:, None, :]
      if f"{t}_bias" in out:
        out[f"{t}_bias"] = out[f"{t}_bias"] * rows[t]
    return out


def personal(options):
  return functools.partial(IA3, targets=parse_targets(options["targets"], "ia3"))


IA3_METHOD = register(Method(
    MethodInfo("ia3", Technique.FINETUNING, tuple(Granularity), "4.4.1",
               "(IA)^3 (Liu et al. 2022), per-group scaling vectors on k, v and the MLP"),
    personal=personal, defaults={"targets": "k,v,up"}))
