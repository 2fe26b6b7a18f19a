"""Run by test_mesh in a fresh process with 8 fake CPU devices (XLA_FLAGS precedes jax).

`bench`: bench train's loss and bytes on several meshes, for a tiny Llama whose sizes divide 8
and 2 (so every base leaf splits); `run ARGS...`: `perjax run ARGS` (its exit code), with a
line "step on N devices" for each training loop."""
import functools
import json
import sys

import jax

from perjax.bench import lora_training, train
from perjax.models.decoder_loading import assemble, random_base
from perjax.models.llama import tiny_llama_config

# d, vocab, heads x head_dim and the MLP width all divide 8 (fsdp) and 2 (tensor)
DIVISIBLE = tiny_llama_config(vocab_size=136, hidden_size=48, intermediate_size=40,
                              num_layers=2, num_heads=4, num_kv_heads=2, head_dim=6)


def tiny_load(name, *, leaf_sharding=None, seed=0, **kwargs):
  """DIVISIBLE with random weights made straight into the mesh's shards, as a known shape's
  are (the same values on every mesh)."""
  for key in ("progress", "random_weights"):
    kwargs.pop(key)
  base = functools.partial(random_base, DIVISIBLE, seed=seed, leaf_sharding=leaf_sharding,
                           frozen_bits=kwargs.pop("frozen_bits", False))
  return assemble(DIVISIBLE, base, seed=seed, **kwargs), None


def bench(meshes):
  lora_training.load = tiny_load  # the bench's model: DIVISIBLE instead of a download
  out = {}
  for train_base in (False, True):
    for mesh in meshes:
      r = train.bench_train("divisible", users=8, steps=2, batch=2, seq=16, rank=4, mesh=mesh,
                            train_base=train_base)
      out[f"{mesh}/{train_base}"] = {k: r[k] for k in ("loss", "mesh", "base_bytes_per_device",
                                                       "opt_bytes_per_device")}
  json.dump(out, sys.stdout)


def main():
  assert len(jax.devices()) == 8, jax.devices()
  if sys.argv[1] == "bench":
    bench(sys.argv[2:])
  else:
    say_placement()
    from perjax.cli import main as cli
    sys.exit(cli(sys.argv[2:]))


def say_placement():
  """Each training loop's device count on stderr, as the loop's placement chose it."""
  from perjax.training import loop
  real = loop.placement

  def placed(*args, **kwargs):
    spread = real(*args, **kwargs)
    n = 1 if spread is None else spread.mesh.devices.size
    print(f"step on {n} devices", file=sys.stderr)
    return spread
  loop.placement = placed


if __name__ == "__main__":
  main()
