"""Personal parameter slots: per-group LoRA adapters and soft prompts, stacked on a group axis.

`Personal` is its own variable type, so optimizers, gradients and checkpoints can select exactly
the personal parameters (`nnx.Optimizer(model, tx, wrt=Personal)`), leaving the base frozen.
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from perjax.errors import ConfigError


class Personal(nnx.Param):
  """A personal parameter: leading axis = group (user, persona, or the one global group)."""


@dataclasses.dataclass(frozen=True)
class PersonalConfig:
  groups: int
  lora_rank: int = 0
  lora_alpha: float | None = None  # None -> 2 * rank
  lora_targets: tuple[str, ...] = ("q", "v")
  prompt_len: int = 0

  @property
  def lora_scale(self) -> float:
    if self.lora_rank == 0:
      return 0.0
    alpha = self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank
    return alpha / self.lora_rank


class PersonalSlots(nnx.Module):
  """LoRA `a [G, L, din, r]`, `b [G, L, r, dout]` per target projection, and `prompt [G, n, d]`."""

  def __init__(self, config: PersonalConfig, *, num_layers: int, hidden_size: int,
               projection_shapes: dict, param_dtype, rngs: nnx.Rngs):
    if config.groups < 1:
      raise ConfigError(f"personal parameters need at least one group, got {config.groups}")
    unknown = set(config.lora_targets) - set(projection_shapes)
    if config.lora_rank and unknown:
      raise ConfigError(f"unknown LoRA target(s) {sorted(unknown)}; "
                        f"choose from {sorted(projection_shapes)}")
    self.config = config
    self.num_layers = num_layers
    G, L, r = config.groups, num_layers, config.lora_rank
    self.targets = tuple(config.lora_targets) if r else ()
    for name in self.targets:
      din, dout = projection_shapes[name]
      bound = 1.0 / math.sqrt(din)  # Kaiming-uniform(a=sqrt 5), as is usual for LoRA's A
      setattr(self, f"lora_{name}_a", Personal(jax.random.uniform(
          rngs.params(), (G, L, din, r), param_dtype, -bound, bound)))
      setattr(self, f"lora_{name}_b", Personal(jnp.zeros((G, L, r, dout), param_dtype)))
    if config.prompt_len:
      self.prompt = Personal(
          jax.random.normal(rngs.params(), (G, config.prompt_len, hidden_size), param_dtype) * 0.02)

  def gather_lora(self, group_ids, dtype, per_layer: bool = False) -> dict | list[dict]:
    """Each example's adapters in `dtype`, the scale folded into b: layer-major for the layer
    scan, {name: (a [L, B, din, r], b [L, B, r, dout])}, or with `per_layer` one {name: (a [B,
    din, r], b [B, r, dout])} per layer, for an unrolled layer loop. Per layer, each layer's
    slice of the table is gathered on its own: the gradient then flows back into `[G, ...]`
    slices, never through a `[B, L, ...]` stack of every row's adapters."""
    scale = self.config.lora_scale
    tables = {name: (getattr(self, f"lora_{name}_a")[...], getattr(self, f"lora_{name}_b")[...])
              for name in self.targets}
    pick = lambda a, b: (a[group_ids].astype(dtype), b[group_ids].astype(dtype) * scale)
    if per_layer:
      return [{name: pick(a[:, i], b[:, i]) for name, (a, b) in tables.items()}
              for i in range(self.num_layers)]
    out = {}
    for name, (a, b) in tables.items():
      a, b = pick(a, b)
      out[name] = (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1))
    return out
