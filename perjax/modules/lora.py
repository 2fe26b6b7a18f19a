"""LoRA (Hu et al. 2021) as a group-stacked personal module: `y + x A_g B_g * alpha / r` at the
"proj.<target>" hook points for the example's group g, with `A [G, L, d_in, r]` Kaiming-uniform
and `B [G, L, r, d_out]` zero, so an untrained row is exactly the base model.

Its export capabilities (`PersonalModule`): it merges into the base weights (`merge_into`), is a
low-rank delta (`low_rank_delta`, peft export) and loads one (`low_rank_rows`, peft import and
`init.adapter`), and rescales rows exported under another alpha (`adapt_rows`).
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from perjax.errors import ConfigError
from perjax.models.personal import (PERSONAL_DTYPE, LowRankDelta, OptionsMismatch, Personal,
                                    PersonalModule, parse_targets)


class LoRA(PersonalModule):
  """`{t}_a [G, L, d_in, r]`, `{t}_b [G, L, r, d_out]` per target projection t. `tables`
  gives the tables' values instead of the initialisation (`merge_groups`)."""

  def __init__(self, *, groups, dims, rngs, rank: int, alpha: float | None = None,
               targets=("q", "v"), tables: dict | None = None):
    self.rank, self.targets = rank, tuple(targets)
    self.alpha = float(alpha) if alpha else 2.0 * rank
    self.hooks = tuple(f"proj.{t}" for t in self.targets)
    self.layered = tuple(f"{t}_{ab}" for t in self.targets for ab in "ab")
    if tables is not None:
      for name, value in tables.items():
        setattr(self, name, Personal(jnp.asarray(value, PERSONAL_DTYPE)))
      return
    G, L, r = groups, dims.num_layers, rank
    for t in self.targets:
      din, dout = dims.projections[t]
      bound = 1.0 / math.sqrt(din)  # Kaiming-uniform(a=sqrt 5), as is usual for LoRA's A
      setattr(self, f"{t}_a", Personal(jax.random.uniform(
          rngs.params(), (G, L, din, r), PERSONAL_DTYPE, -bound, bound)))
      setattr(self, f"{t}_b", Personal(jnp.zeros((G, L, r, dout), PERSONAL_DTYPE)))

  @property
  def scale(self) -> float:
    return self.alpha / self.rank

  def prepare(self, rows, dtype):
    # the scale is folded into b once per gather, not once per projection call
    return {k: v.astype(dtype) * self.scale if k.endswith("_b") else v.astype(dtype)
            for k, v in rows.items()}

  def project(self, name, y, x, rows):
    a, b = rows[f"{name}_a"], rows[f"{name}_b"]  # [B, din, r], [B, r, dout]
    return y + jnp.einsum("btr,bro->bto", jnp.einsum("btd,bdr->btr", x, a), b)

  def describe(self):
    return {"rank": self.rank, "alpha": self.alpha, "targets": list(self.targets)}

  def merge_into(self, layers, rows):
    out = dict(layers)
    for t in self.targets:  # W + a b * alpha / rank
      delta = np.einsum("lir,lro->lio", rows[f"{t}_a"], rows[f"{t}_b"]) * self.scale
      out[t] = out[t] + delta.astype(out[t].dtype)
    return out

  @classmethod
  def as_low_rank(cls, options, rows):
    targets = tuple(options["targets"])
    return LowRankDelta(rank=int(options["rank"]), alpha=float(options["alpha"]),
                        targets=targets,
                        tables={k: rows[k] for t in targets for k in (f"{t}_a", f"{t}_b")})

  def low_rank_rows(self, delta):
    if delta.rank != self.rank or tuple(delta.targets) != self.targets:
      raise OptionsMismatch(
          f"a rank-{delta.rank} LoRA on {','.join(delta.targets)}, the module a rank-{self.rank} "
          f"one on {','.join(self.targets)}",
          {"rank": delta.rank, "targets": ",".join(delta.targets)})
    return self.adapt_rows(dict(delta.tables), {"rank": delta.rank, "alpha": delta.alpha})

  def merge_groups(self, weights) -> "LoRA":
    """A module of the same kind whose row n acts with the delta `sum_k weights[n, k] *
    delta_k`, `delta_k = A_k B_k * scale` the delta of this module's row k (per layer and
    target), exactly: the rows' ranks are concatenated, each source's A scaled by its weight,
    so the merged rank is `G_old * rank` and the scale stays the same (Personalized Soups'
    parameter merging, with no approximation). `weights` is `[G_new, G_old]`. Any other table
    (e.g. a reward head) becomes the weighted sum of its rows."""
    w = np.asarray(weights, np.float32)
    tables = self.tables()
    if w.ndim != 2 or w.shape[1] != self.groups:
      raise ConfigError(f"merge_groups: weights must be [new groups, {self.groups}], got "
                        f"shape {w.shape}")
    w = jnp.asarray(w)
    merged = {}
    for name, t in tables.items():
      if name.endswith("_a"):  # [G, L, d, r] -> [N, L, d, G*r], column block k scaled by w[:, k]
        G, L, d, r = t.shape
        merged[name] = jnp.einsum("nk,kldr->nldkr", w, t).reshape(w.shape[0], L, d, G * r)
      elif name.endswith("_b"):  # [G, L, r, o] -> [N, L, G*r, o], the same for every row
        G, L, r, o = t.shape
        stacked = jnp.swapaxes(t, 0, 1).reshape(L, G * r, o)
        merged[name] = jnp.broadcast_to(stacked, (w.shape[0], L, G * r, o))
      else:
        merged[name] = jnp.tensordot(w, t, axes=1)
    rank = self.groups * self.rank
    module = type(self)(groups=w.shape[0], dims=None, rngs=None, rank=rank,
                        alpha=self.scale * rank, targets=self.targets, tables=merged,
                        **self.merge_options())
    module.level = self.level
    return module

  def merge_options(self) -> dict:
    """Constructor options a subclass adds (passed on by `merge_groups`)."""
    return {}

  def adapt_rows(self, rows, exported):
    """An adapter exported with another alpha acts as it did: its b is rescaled."""
    rescale = (float(exported["alpha"]) / int(exported["rank"])) / self.scale
    return {k: v * rescale if k.endswith("_b") else v for k, v in rows.items()}


def lora_options(options, method: str) -> dict:
  """LoRA's constructor arguments from a method's `rank`, `alpha` and `targets` options."""
  rank = int(options["rank"])
  if rank < 1:
    raise ConfigError(f"{method}.rank must be >= 1, got {rank}")
  alpha = float(options["alpha"]) if options["alpha"] else None
  return {"rank": rank, "alpha": alpha, "targets": parse_targets(options["targets"], method)}


def lora_factory(method: str, module=None):
  """A method's `personal` slot building `module` (LoRA or a subclass) from its options."""
  return lambda options: functools.partial(module or LoRA, **lora_options(options, method))


LORA_DEFAULTS = {"rank": 8, "alpha": 16.0, "targets": "q,v"}
