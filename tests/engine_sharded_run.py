"""Run by test_engine_sharding in a fresh process (XLA_FLAGS must precede the jax import).

Trains the tiny model a few steps unsharded, on a 1-device mesh and on an 8-device
("data" 4 x "groups" 2) mesh, for a table that splits (G=4, AdamW) and one that is replicated (G=3, SGD);
prints the losses and final parameters' distance to the unsharded run as JSON.
"""
import json
import sys

import jax
import numpy as np

from engine_tiny import batch, examples, personal_arrays, tiny_model, trainer, OPTIMIZERS
from perjax import sharding


def train(groups, tx, mesh=None, steps=3):
  batches = [batch(examples({g: 2 for g in range(groups)}, seed=s), rows=8) for s in range(steps)]
  model = tiny_model(groups=groups)
  kw = {}
  if mesh is not None:
    _, state, _ = trainer(model, OPTIMIZERS[tx]())
    kw = dict(zip(("in_shardings", "out_shardings"),
                  sharding.step_shardings(state, batches[0], mesh)))
  _, state, step = trainer(model, OPTIMIZERS[tx](), donate=True, **kw)
  if mesh is not None:
    state = sharding.place(state, kw["in_shardings"][0])
    batches = [sharding.place(b, kw["in_shardings"][1]) for b in batches]
  losses = []
  for i, b in enumerate(batches):
    state, m = step(state, b, jax.random.key(i))
    losses.append(float(m["objective"]))
  specs = sorted({str(getattr(x.sharding, "spec", None)) for x in jax.tree.leaves(state.personal)})
  return losses, personal_arrays(state), specs


def main():
  assert len(jax.devices()) == 8, jax.devices()
  out = {}
  for groups, tx in ((4, "adamw"), (3, "sgd")):
    plain, ref, _ = train(groups, tx)
    runs = {"mesh1": sharding.make_mesh(devices=jax.devices()[:1]),
            "mesh8": sharding.make_mesh(groups=2)}
    for name, mesh in runs.items():
      losses, params, specs = train(groups, tx, mesh)
      out[f"G{groups}/{name}"] = {
          "loss_diff": max(abs(a - b) for a, b in zip(plain, losses)),
          "param_diff": max(float(np.abs(params[k] - ref[k]).max()) for k in ref),
          "specs": specs, "tx": tx}
  json.dump(out, sys.stdout)


if __name__ == "__main__":
  main()
