"""The compiled train step's temporary memory with and without the training memory options.

    JAX_PLATFORMS=cpu PYTHONPATH=. python experiments/bench/train_memory.py [--users 4 --batch 4 --seq 512]
    JAX_PLATFORMS=cpu PYTHONPATH=. python experiments/bench/train_memory.py --users 16 --batch 16 \
        --seq 256 --chunk 8192 --dtype bfloat16 --unroll-layers     # gpu_checks.sh's step
    ... train_memory.py --tiny --users 2 --batch 1 --seq 16 --chunk 8   # tiny-llama: the smoke test

SmolLM2-135M's architecture with random weights (nothing is run, only compiled), the bench's
setting (rank-8 LoRA on q and v per user, AdamW). Prints XLA's memory analysis of each program:
`temp` is the scratch the step needs beyond its arguments and outputs (activations, logits).
"""
import argparse
import json

from perjax.cli.environment import apply_command_defaults

apply_command_defaults()  # the command's XLA scheduler flag, on which remat's saving depends

import jax  # noqa: E402
import numpy as np

from perjax.bench.generate import lora_builder
from perjax.models import load
from perjax.training.objectives import lm_loss
from perjax.training.optim import make_optimizer
from perjax.training.step import init_train_state, make_train_step


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--users", type=int, default=4)
  ap.add_argument("--batch", type=int, default=4)
  ap.add_argument("--seq", type=int, default=512)
  ap.add_argument("--chunk", type=int, default=1024)
  ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  ap.add_argument("--unroll-layers", action="store_true")
  ap.add_argument("--tiny", action="store_true", help="tiny-llama instead of SmolLM2-135M")
  args = ap.parse_args()
  # tiny-llama is built with random weights already; a known shape is given them
  shape = dict(name="tiny-llama") if args.tiny else dict(name="smollm2-135m-instruct",
                                                         random_weights=True)
  model, _ = load(**shape, personal=lora_builder(args.users, 8), progress=False,
                  dtype=args.dtype, param_dtype=args.dtype, unroll_layers=args.unroll_layers)
  rows = args.users * args.batch
  ids = np.zeros((1, rows, args.seq), np.int32)
  batch = {"input_ids": ids, "loss_mask": np.ones_like(ids), "attention_mask": np.ones_like(ids),
           "group_ids": np.repeat(np.arange(args.users, dtype=np.int32), args.batch)[None]}
  for remat, chunk in ((False, 0), (False, args.chunk), (True, 0), (True, args.chunk)):
    model.remat_layers, model.loss_chunk = remat, chunk
    graphdef, state, ptx, btx = init_train_state(model, make_optimizer("adamw", 1e-4))
    step = make_train_step(graphdef, ptx, btx, lm_loss, args.users)
    memory = step.lower(state, batch, jax.random.key(0)).compile().memory_analysis()
    print(json.dumps({"dtype": args.dtype, "unroll_layers": args.unroll_layers,
                      "remat": remat, "loss_chunk": chunk, "tokens": rows * args.seq,
                      "temp_mb": round(memory.temp_size_in_bytes / 2**20, 1),
                      "logits_f32_mb": round(rows * args.seq * model.config.vocab_size * 4 / 2**20, 1)}))


if __name__ == "__main__":
  main()
