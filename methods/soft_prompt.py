"""Per-group soft prompts: `length` learned vectors prepended to the input embeddings, one set per
group (a user, a persona, or the one global group), trained with the LM loss on the targets.

A personal module at the "prefix" hook point: `prompt [G, n, d]`, initialised N(0, 0.02^2).
"""
import functools

import jax

from perjax.errors import ConfigError
from perjax.method import Method, register
from perjax.models.personal import PERSONAL_DTYPE, Personal, PersonalModule
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique


class SoftPrompt(PersonalModule):
  hooks = ("prefix",)

  def __init__(self, *, groups, dims, rngs, length: int):
    self.prefix_len = length
    self.prompt = Personal(jax.random.normal(
        rngs.params(), (groups, length, dims.hidden_size), PERSONAL_DTYPE) * 0.02)

  def prefix(self, rows):
    return rows["prompt"]  # [B, n, d]

  def describe(self):
    return {"length": self.prefix_len}


def personal(options):
  length = int(options["length"])
  if length < 1:
    raise ConfigError(f"soft_prompt.length must be >= 1, got {length}")
  return functools.partial(SoftPrompt, length=length)


SOFT_PROMPT = register(Method(
    MethodInfo("soft_prompt", Technique.EMBEDDING, tuple(Granularity), "4.3",
               "per-user soft prompts / user embeddings (e.g. UEM, PERSOMA)"),
    personal=personal, defaults={"length": 8}))
