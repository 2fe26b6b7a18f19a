"""Where one call of a CPU bench spends its time, op by op: a profiler trace of one warm call
(after two warm-up calls), each compiled op's time summed by kind and output shape, and split
into matrix products (ops whose fused computation holds a `dot`) and the rest. The shapes come
from the optimised HLO that XLA dumps for the same program.

  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/op_profile.py train      # the training bench's step
  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/op_profile.py generate   # batch-16 generation
  ... op_profile.py train --tiny   # tiny-llama at toy sizes: the smoke test

Op times overlap where XLA runs two ops at once on the two cores, so their sum can exceed the
call's wall time; the shares are what to compare. Tracing also slows ops that overlap (the
training step's products look up to 3.5x slower beside each other than alone, which an
untraced comparison did not bear out; docs/benchmarks.md): check a conclusion untraced.
"""
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

DUMP = tempfile.mkdtemp(prefix="perjax-hlo-")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_dump_to={DUMP} --xla_dump_hlo_as_text").strip()

from perjax.cli.environment import apply_command_defaults  # noqa: E402

apply_command_defaults()  # the `perjax` command's XLA flags, under which the figures were taken

import jax  # noqa: E402  (after XLA_FLAGS)
import numpy as np  # noqa: E402

# a program read from the persistent compilation cache is not compiled, so not dumped
jax.config.update("jax_enable_compilation_cache", False)


def training_call(tiny: bool):
  """The training bench's step (4 users x 4 rows x 128 tokens, rank-8 LoRA on q and v,
  bfloat16, layers unrolled) as a function of no arguments."""
  from perjax.bench.lora_training import lora_training, random_ids, token_rows
  from perjax.training.objectives import lm_loss
  from perjax.training.step import make_train_step
  users, batch, seq = (2, 2, 16) if tiny else (4, 4, 128)
  model, graphdef, state, personal_tx, base_tx = lora_training(
      "tiny-llama" if tiny else "smollm2-135m-instruct", users, 8, dtype="bfloat16",
      unroll_layers=True)
  step = make_train_step(graphdef, personal_tx, base_tx, lm_loss, users)
  ids = random_ids(np.random.default_rng(0), (1, users * batch, seq), model.config.vocab_size)
  data = token_rows(ids, np.repeat(np.arange(users, dtype=np.int32), batch)[None])
  holder = {"state": state}

  def call():
    holder["state"], metrics = step(holder["state"], data, jax.random.key(0))
    return metrics["loss"]
  return call


def generation_call(tiny: bool):
  """The generation bench's call: 16 prompts of 128 tokens, 32 new tokens, bfloat16."""
  from perjax.bench.lora_training import random_ids
  from perjax.generation import Generator, SamplingConfig
  from perjax.models import load
  model, tokenizer = load("tiny-llama" if tiny else "smollm2-135m-instruct", dtype="bfloat16",
                          param_dtype="bfloat16", progress=False)
  generator = Generator(model, tokenizer, stop_at_eos=False)
  prompts = random_ids(np.random.default_rng(0), (4, 8) if tiny else (16, 128),
                       model.config.vocab_size).tolist()
  sampling = SamplingConfig(max_new_tokens=4 if tiny else 32)
  return lambda: generator.generate_ids(prompts, sampling=sampling)


def traced_call(call, trace_dir: str) -> float:
  for _ in range(2):
    jax.block_until_ready(call())
  jax.profiler.start_trace(trace_dir)
  start = time.perf_counter()
  jax.block_until_ready(call())
  wall = time.perf_counter() - start
  jax.profiler.stop_trace()
  return wall


def hlo_ops() -> dict[str, tuple[str, bool]]:
  """op name -> (output shape, whether it computes a matrix product), from the largest
  optimised module XLA dumped (the bench's program)."""
  path = max(glob.glob(f"{DUMP}/*after_optimizations.txt"), key=os.path.getsize)
  text = open(path).read()
  bodies = {m.group(1): m.group(2) for m in
            re.finditer(r"^%(\S+) \([^\n]*\{\n(.*?)\n\}", text, re.M | re.S)}
  ops = {}
  for m in re.finditer(r"^\s+(?:ROOT )?%(\S+) = (\S+) (\S+?)\((.*)$", text, re.M):
    name, shape, kind, rest = m.groups()
    called = re.search(r"calls=%([\w.\-]+)", rest)
    body = bodies.get(called.group(1), "") if called else ""
    ops[name] = (shape.split("{")[0], kind in ("dot", "convolution") or " dot(" in body)
  return ops


def op_times(trace_dir: str) -> dict[str, list]:
  """op name -> [seconds, executions] over the traced call (an op in a loop body runs once per
  iteration under the same name)."""
  path = sorted(glob.glob(f"{trace_dir}/plugins/profile/*/*.trace.json.gz"))[-1]
  events = json.load(gzip.open(path))["traceEvents"]
  times = collections.defaultdict(lambda: [0.0, 0])
  for e in events:
    if e.get("ph") == "X":
      times[e["name"]][0] += e["dur"] / 1e6
      times[e["name"]][1] += 1
  return times


def report(wall: float, times: dict[str, list], ops: dict[str, tuple[str, bool]], top: int = 25):
  rows = collections.defaultdict(lambda: [0.0, 0])
  split = collections.defaultdict(float)
  for name, (seconds, executions) in times.items():
    if name not in ops:  # runtime bookkeeping (executor waits, Python frames), not an op
      continue
    shape, product = ops[name]
    kind = re.sub(r"\.\d+$", "", name)
    rows[(kind, shape, product)][0] += seconds
    rows[(kind, shape, product)][1] += executions
    split["matrix products" if product else "everything else"] += seconds
  total = sum(split.values())
  print(f"wall time of the traced call: {wall:.3f} s; ops' summed time: {total:.3f} s")
  for what, seconds in sorted(split.items(), key=lambda kv: -kv[1]):
    print(f"  {what}: {seconds:.3f} s ({seconds / total:.0%})")
  print("\n| op kind | output | product | calls | time (s) | share |\n|---|---|---|---|---|---|")
  for (kind, shape, product), (seconds, calls) in sorted(rows.items(), key=lambda kv: -kv[1][0])[:top]:
    print(f"| {kind} | {shape} | {'yes' if product else ''} | {calls} | {seconds:.3f} | "
          f"{seconds / total:.1%} |")


def main():
  args = [a for a in sys.argv[1:] if a != "--tiny"]
  what, tiny = (args or ["train"])[0], "--tiny" in sys.argv[1:]
  if what not in ("train", "generate"):
    sys.exit(f"op_profile: unknown bench {what!r} (train or generate)")
  call = training_call(tiny) if what == "train" else generation_call(tiny)
  trace_dir = tempfile.mkdtemp(prefix="perjax-trace-")
  wall = traced_call(call, trace_dir)
  report(wall, op_times(trace_dir), hlo_ops())


if __name__ == "__main__":
  main()
