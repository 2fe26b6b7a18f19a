"""Personal modules for the model tests: the LoRA and soft-prompt plugins, built directly."""
import functools

import jax
from flax import nnx

from perjax.methods.soft_prompt import SoftPrompt
from perjax.modules.lora import LoRA
from perjax.models.personal import ModuleSpec, Personal, stack_builder


def personal(groups=3, rank=2, prompt_len=0, targets=("q", "v"), alpha=None):
  """A builder for `Llama(personal=...)`: LoRA (rank > 0) then a soft prompt (prompt_len > 0)."""
  specs = []
  if rank:
    specs.append(ModuleSpec("lora", None, functools.partial(
        LoRA, rank=rank, alpha=alpha, targets=targets)))
  if prompt_len:
    specs.append(ModuleSpec("soft_prompt", None, functools.partial(SoftPrompt, length=prompt_len)))
  return stack_builder(specs, {None: groups})


def lora_b(model) -> list[Personal]:
  """The LoRA `b` tables of `model`, in target order (empty without LoRA)."""
  if model.personal is None or "lora" not in model.personal.names:
    return []
  lora = model.personal.lora
  return [getattr(lora, f"{t}_b") for t in lora.targets]


def randomize_lora_b(model, scale=0.3, seed=100):
  """LoRA b starts at zero; make it matter (a distinct key per target)."""
  for i, b in enumerate(lora_b(model)):
    b[...] = jax.random.normal(jax.random.key(seed + i), b[...].shape) * scale


def personal_arrays(model) -> dict:
  import numpy as np
  return {"/".join(map(str, p)): np.asarray(v)
          for p, v in nnx.to_flat_state(nnx.state(model, Personal))}
