"""Shared tiny-model helpers for the engine tests (odd sizes; seconds on a CPU)."""
import jax
import numpy as np
import optax
from flax import nnx

from perjax.models.llama import Llama, tiny_llama_config
from personal_tiny import lora_b, personal as make_personal
from perjax.training import batching, objectives, step as steplib

SEQ = 11


def tiny_model(groups=3, rank=3, prompt_len=2, targets=("q", "v"), seed=0, b_scale=0.0,
               alpha=None, **cfg):
  """A 2-layer tiny Llama; `b_scale` > 0 gives LoRA `b` random non-zero values."""
  config = tiny_llama_config(num_layers=2, vocab_size=67, hidden_size=30, intermediate_size=38,
                             num_heads=3, num_kv_heads=1, head_dim=10, **cfg)
  personal = make_personal(groups=groups, rank=rank, prompt_len=prompt_len, targets=targets,
                           alpha=alpha)
  model = Llama(config, personal=personal, rngs=nnx.Rngs(seed))
  model.tiny_layout = (groups, rank, prompt_len, targets, alpha)  # a hashable cache key
  if b_scale and rank:
    key = jax.random.key(seed + 100)
    for var in lora_b(model):
      key, sub = jax.random.split(key)
      var.value = jax.random.normal(sub, var.value.shape) * b_scale
  return model


def examples(group_counts: dict, seed=0, vocab=67):
  """{group: n} -> list of (ids, loss_mask, group) with varying lengths and prompt splits."""
  rng = np.random.default_rng(seed)
  out = []
  for g, n in group_counts.items():
    for _ in range(n):
      length = int(rng.integers(5, SEQ + 1))
      split = int(rng.integers(1, length - 1))
      ids = rng.integers(3, vocab, size=length).tolist()
      out.append((ids, [0] * split + [1] * (length - split), g))
  return out


def batch(exs, accum=1, rows=6):
  """A batch padded to `rows` examples with empty rows of an already present group: they carry
  no loss and change no group's presence, and a fixed shape keeps compilations few."""
  exs = list(exs) + [([], [], exs[0][2])] * (rows - len(exs))
  return batching.make_batch(exs, SEQ, pad_id=0, accum=accum)


def trainer(model, tx, *, donate=False, **kw):
  graphdef, state, ptx, btx = steplib.init_train_state(model, tx)
  G = model.tiny_layout[0]
  step = steplib.make_train_step(graphdef, ptx, btx, objectives.lm_loss, G, donate=donate, **kw)
  return graphdef, state, step


_STEPS = {}  # one jitted step per optimizer and model layout, shared by tests (compiles are slow)


def run(model, tx_name, batches):
  """Train on `batches` in order with `OPTIMIZERS[tx_name]`; returns (state, per-step metrics)."""
  key = (tx_name, model.config, model.tiny_layout)
  _, state, step = trainer(model, OPTIMIZERS[tx_name]())
  step = _STEPS.setdefault(key, step)
  metrics = []
  for i, b in enumerate(batches):
    state, m = step(state, b, jax.random.key(i))
    metrics.append(jax.device_get(m))
  return state, metrics


def personal_arrays(state) -> dict:
  return {"/".join(map(str, p)): np.asarray(v) for p, v in nnx.to_flat_state(state.personal)}


OPTIMIZERS = {"sgd": lambda: optax.sgd(0.5),
              "adamw": lambda: optax.adamw(3e-2, weight_decay=0.1)}
