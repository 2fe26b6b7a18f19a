"""Every hook point in every decoder family: LoRA at all seven projections, a soft prompt, and
per-group shifts at the embeddings, the residual stream (a layered table) and the final state
act together; cached decoding of a batch mixing groups (from a per-layer copy of the weights,
or in the layer scan over the model's own) equals re-running the full forward pass for each
token, row by row."""
import functools

import jax
import numpy as np
import pytest
from flax import nnx

from family_configs import tiny_family_config
from perjax.methods.soft_prompt import SoftPrompt
from perjax.modules.lora import LoRA
from perjax.generation import Generator, SamplingConfig
from perjax.models.families import SUPPORTED
from perjax.models.llama import Llama
from perjax.models.personal import PROJECTIONS, ModuleSpec, Personal, PersonalModule, stack_builder


class Shifts(PersonalModule):
  """A per-group vector added at the embeddings, after each layer (one per layer) and to the
  final state: the hooks no shipped method uses."""
  hooks = ("embed", "residual", "final")
  layered = ("residual_shift",)

  def __init__(self, *, groups, dims, rngs):
    d, L = dims.hidden_size, dims.num_layers
    draw = lambda shape: Personal(jax.random.normal(rngs.params(), shape) * 0.3)
    self.embed_shift, self.final_shift = draw((groups, d)), draw((groups, d))
    self.residual_shift = draw((groups, L, d))

  def embed(self, x, rows):
    return x + rows["embed_shift"][:, None]

  def residual(self, h, rows):
    return h + rows["residual_shift"][:, None]

  def final(self, h, rows):
    return h + rows["final_shift"][:, None]


def _model(family):
  specs = [ModuleSpec("lora", None, functools.partial(LoRA, rank=2, targets=PROJECTIONS)),
           ModuleSpec("soft_prompt", None, functools.partial(SoftPrompt, length=2)),
           ModuleSpec("shifts", None, Shifts)]
  model = Llama(tiny_family_config(family), personal=stack_builder(specs, {None: 3}),
                rngs=nnx.Rngs(4))
  for i, t in enumerate(PROJECTIONS):  # LoRA's b starts at zero: make it matter
    b = getattr(model.personal.lora, f"{t}_b")
    b[...] = jax.random.normal(jax.random.key(i), b[...].shape) * 0.3
  return model


@pytest.mark.parametrize("share_base", [False, True], ids=["layer_copy", "shared_scan"])
@pytest.mark.parametrize("family", SUPPORTED)
def test_cached_mixed_group_decoding_equals_the_full_forward(family, share_base):
  model = _model(family)
  prompts, groups = [[5, 17, 30, 4, 8, 9], [9, 9, 40], [5, 17, 30, 4, 8, 9]], [0, 1, 2]
  new = 7  # past the sliding windows (4 or 5 slots) of the tiny configs
  out = Generator(model, stop_at_eos=False, share_base=share_base).generate_ids(
      prompts, group_ids=groups, sampling=SamplingConfig(max_new_tokens=new))
  for prompt, group, got in zip(prompts, groups, out):
    seq = list(prompt)
    for _ in range(new):
      logits = np.asarray(model(np.array([seq]), group_ids=np.array([group])))
      seq.append(int(logits[0, -1].argmax()))
    assert got == seq[len(prompt):], (family, group)
  # same prompt, another group: the rows' own parameters act (logits, as soft-capped logits
  # of a random model may agree on the argmax)
  ids = np.array([prompts[0]] * 2)
  logits = np.asarray(model(ids, group_ids=np.array([0, 2])))
  assert not np.allclose(logits[0], logits[1], atol=1e-4)


@pytest.mark.parametrize("family", SUPPORTED)
def test_every_hook_changes_the_output(family):
  model = _model(family)
  ids = np.array([[5, 17, 30, 4, 8, 9, 11, 12]])
  base = np.asarray(model(ids, group_ids=[0]))
  for name in ("embed_shift", "residual_shift", "final_shift"):
    var = getattr(model.personal.shifts, name)
    saved = var[...]
    var[...] = saved * 0
    assert not np.allclose(np.asarray(model(ids, group_ids=[0])), base, atol=1e-5), name
    var[...] = saved
