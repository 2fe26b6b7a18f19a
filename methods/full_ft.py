"""Full fine-tuning: every weight of the decoder trained with the LM loss (or a composed
objective).

At global granularity the shared base itself is trained (the engine's `train_base`): one model
for everyone, embeddings, norms and LM head included. At persona granularity each persona gets
its own full copy of the decoder's projection weights: a per-persona full-rank delta `D_g` on
every projection of every layer (`y = x (W + D_g)`), zero at the start, trained with the
persona's examples only. Gradient and Adam update of `D_g` are those of the copy `W + D_g`, so
this is exactly a separate fine-tuned copy of those weights per persona (with the shared
embeddings, norms and LM head frozen); it costs a full model's projection weights per persona
(with Adam, four times that in training), so a run that does not fit memory says so first.
The forward pass gathers each example's copy as any personal row, so a training batch also
holds batch-size copies of the projection weights: keep persona batches small.
"""
import functools
import os
import sys

import jax
import jax.numpy as jnp

from perjax.method import Method, register
from perjax.models.personal import PERSONAL_DTYPE, PROJECTIONS, Personal, PersonalModule
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique

# float32 value, gradient and two Adam moments per trained number
TRAINING_BYTES_PER_PARAMETER = 16


def available_memory() -> int | None:
  """Bytes the tables can use: the accelerator's limit, else the host's available memory."""
  device = jax.devices()[0]
  if device.platform != "cpu":
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
      return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None


def memory_warning(groups: int, parameters: int, available: int | None) -> str | None:
  """One line when `groups` full copies of `parameters` numbers will not fit `available`."""
  need = groups * parameters * TRAINING_BYTES_PER_PARAMETER
  if available is None or need <= available:
    return None
  return (f"full_ft: {groups} full copies of {parameters / 1e6:.1f}M parameters need about "
          f"{need / 2**30:.1f} GiB to train, more than the {available / 2**30:.1f} GiB available")


class FullDelta(PersonalModule):
  """`{p}_delta [G, L, d_in, d_out]` for every projection p: the group's own copy of the
  projection weights, stored as its difference from the shared base."""

  def __init__(self, *, groups, dims, rngs):
    del rngs  # zeros: every copy starts as the base
    self.hooks = tuple(f"proj.{p}" for p in PROJECTIONS)
    self.layered = tuple(f"{p}_delta" for p in PROJECTIONS)
    parameters = sum(dims.num_layers * i * o for i, o in (dims.projections[p]
                                                          for p in PROJECTIONS))
    warning = memory_warning(groups, parameters, available_memory())
    if warning:
      print(warning, file=sys.stderr)
    for p in PROJECTIONS:
      din, dout = dims.projections[p]
      setattr(self, f"{p}_delta", Personal(
          jnp.zeros((groups, dims.num_layers, din, dout), PERSONAL_DTYPE)))

  def project(self, name, y, x, rows):
    return y + jnp.einsum("btd,bdo->bto", x, rows[f"{name}_delta"])


def personal(options):
  del options
  return functools.partial(FullDelta)


FULL_FT = register(Method(
    MethodInfo("full_ft", Technique.FINETUNING, (Granularity.PERSONA, Granularity.GLOBAL),
               "4.4", "full fine-tuning (global: the base; persona: one full copy per persona)"),
    personal=personal, base_at=(Granularity.GLOBAL,)))
