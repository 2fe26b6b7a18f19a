"""Prefill against decoding in the batch-16 generation bench: the whole call's time with 1, 2
and 32 new tokens (1 new token is the prefill and one pick), 3 calls each after a warm-up.
XLA_FLAGS in the environment compare XLA CPU options on the same program.

  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/generate_split.py
  ... generate_split.py --tiny   # tiny-llama, 4 prompts of 8 tokens, 1 call: the smoke test
"""
import sys
import time

import numpy as np

from perjax.bench.lora_training import random_ids
from perjax.cli.environment import apply_command_defaults
from perjax.generation import Generator, SamplingConfig
from perjax.models import load

apply_command_defaults()  # the `perjax` command's XLA flags, under which the figures were taken

tiny = "--tiny" in sys.argv[1:]
model, tokenizer = load("tiny-llama" if tiny else "smollm2-135m-instruct", dtype="bfloat16",
                        param_dtype="bfloat16", progress=False)
generator = Generator(model, tokenizer, stop_at_eos=False)
prompts = random_ids(np.random.default_rng(0), (4, 8) if tiny else (16, 128),
                     model.config.vocab_size).tolist()
for new_tokens in (1, 2, 4) if tiny else (1, 2, 32):
  sampling = SamplingConfig(max_new_tokens=new_tokens)
  generator.generate_ids(prompts, sampling=sampling)  # compile
  times = []
  for _ in range(1 if tiny else 3):
    start = time.perf_counter()
    generator.generate_ids(prompts, sampling=sampling)
    times.append(time.perf_counter() - start)
  print(f"{new_tokens} new tokens: " + ", ".join(f"{t:.3f} s" for t in times), flush=True)
