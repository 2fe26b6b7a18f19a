"""The training bench's step (4 users x 4 rows x 128 tokens, rank-8 LoRA on q and v, bfloat16,
layers unrolled) with the layers' separate projections, as perjax runs it, against the same step
with q/k/v and gate/up fused into one product each (the weights concatenated inside the step,
as `Llama.unstacked_layers(fuse=True)` does for generation). Both are compiled in one process
and called in turn, so a noisy machine slows both alike; prints each call and the medians.

  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/fused_step_ab.py [calls per variant, default 6]
  ... fused_step_ab.py 1 --tiny   # tiny-llama, 2 users x 2 rows x 16 tokens: the smoke test
"""
import sys
import time

import jax
import numpy as np

from perjax.bench.lora_training import lora_training, random_ids, token_rows
from perjax.cli.environment import apply_command_defaults
from perjax.models import llama
from perjax.training.objectives import lm_loss
from perjax.training.step import make_train_step

apply_command_defaults()  # the `perjax` command's XLA flags, under which the figures were taken

FULL = dict(model="smollm2-135m-instruct", users=4, batch=4, seq=128)
TINY = dict(model="tiny-llama", users=2, batch=2, seq=16)


def main(calls: int, sizes: dict):
  users, batch, seq = sizes["users"], sizes["batch"], sizes["seq"]
  model, graphdef, state, personal_tx, base_tx = lora_training(
      sizes["model"], users, 8, dtype="bfloat16", unroll_layers=True)
  ids = random_ids(np.random.default_rng(0), (1, users * batch, seq), model.config.vocab_size)
  data = token_rows(ids, np.repeat(np.arange(users, dtype=np.int32), batch)[None])
  separate = llama.Llama.unstacked_layers
  steps = {}
  for variant in ("separate", "fused"):
    # the step traces its forward pass on its first call, so the patch only has to hold then
    llama.Llama.unstacked_layers = (separate if variant == "separate" else
                                    lambda self, fuse=True: separate(self, fuse=True))
    steps[variant] = make_train_step(graphdef, personal_tx, base_tx, lm_loss, users)
    state, metrics = steps[variant](state, data, jax.random.key(0))
    print(f"{variant}: compiled, loss {float(metrics['loss']):.6f}", flush=True)
  llama.Llama.unstacked_layers = separate
  times = {variant: [] for variant in steps}
  for i in range(calls):
    for variant, step in steps.items():
      start = time.perf_counter()
      state, metrics = step(state, data, jax.random.key(0))
      float(metrics["loss"])  # waits for the step
      times[variant].append(time.perf_counter() - start)
    print(f"call {i}: " + ", ".join(f"{v} {t[-1]:.3f} s" for v, t in times.items()), flush=True)
  for variant, t in times.items():
    median = float(np.median(t))
    print(f"{variant}: median {median:.3f} s, {users * batch * seq / median:.1f} tokens/s")


if __name__ == "__main__":
  args = [a for a in sys.argv[1:] if a != "--tiny"]
  main(int(args[0]) if args else 6, TINY if "--tiny" in sys.argv[1:] else FULL)
