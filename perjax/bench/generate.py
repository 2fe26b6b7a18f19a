"""`perjax bench generate`: greedy decoding throughput on random prompts.

Mirrors `hf_peft_baseline.py --what gen|gen_mixed`: random prompt ids in [100, 40000), every row
generates exactly `new_tokens` (EOS does not stop it), time over the whole call (prefill included).
With `adapters > 0`, rows use `adapters` different random non-zero LoRA adapters (q and v): the
library's LoRA module (`perjax.modules.lora`, what peft's LoRA is in perjax), no method.
"""
import functools
import time

import jax
import numpy as np

from perjax.generation import Generator, SamplingConfig
from perjax.models import load
from perjax.models.known_configs import known_config
from perjax.models.llama import parameter_count
from perjax.models.weight_bits import worth_storing_as_bits
from perjax.models.personal import single
from perjax.modules.lora import LoRA


ADAPTER = "adapter"  # the benches' module name in the personal stack


def lora_builder(groups: int, rank: int):
  """A LoRA module of rank `rank` on q and v, alpha 2 rank (the reference's setting)."""
  factory = functools.partial(LoRA, rank=rank, alpha=2 * rank, targets=("q", "v"))
  return single(factory, groups, name=ADAPTER)


def randomize_lora_b(model, seed: int = 0, scale: float = 0.02) -> None:
  """Give every adapter a non-zero B, so each really changes the output (as peft's
  init_lora_weights=False does in the reference)."""
  adapter = getattr(model.personal, ADAPTER)
  key = jax.random.key(seed)
  for i, name in enumerate(adapter.targets):
    b = getattr(adapter, f"{name}_b")
    b[...] = jax.random.normal(jax.random.fold_in(key, i), b[...].shape, b[...].dtype) * scale


def bench_generate(model_name: str, *, batch: int, prompt_len: int, new_tokens: int,
                   adapters: int = 0, rank: int = 8, dtype: str = "bfloat16",
                   random_weights: bool = False,
                   repeats: int = 2) -> dict:
  personal = lora_builder(adapters, rank) if adapters else None
  # Over 1B parameters on CPU the base is stored as bits and decoding reads it in place, so a
  # 7-8B model fits a host with twice its bytes; below, the faster per-layer copy is kept.
  large = parameter_count(known_config(model_name)) > 1e9 if random_weights else False
  # weights are stored in the compute dtype, so bfloat16 also halves the bytes read per token
  model, tokenizer = load(model_name, personal=personal, dtype=dtype, param_dtype=dtype,
                          progress=False, random_weights=random_weights,
                          frozen_bits=large and worth_storing_as_bits(dtype, False))
  if adapters:
    randomize_lora_b(model)
  generator = Generator(model, tokenizer, stop_at_eos=False, share_base=large or None)
  rng = np.random.default_rng(0)
  prompts = rng.integers(100, min(40000, model.config.vocab_size), (batch, prompt_len)).tolist()
  group_ids = np.arange(batch) % adapters if adapters else None
  sampling = SamplingConfig(max_new_tokens=new_tokens)

  start = time.perf_counter()
  generator.generate_ids(prompts, group_ids=group_ids, sampling=sampling)
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    out = generator.generate_ids(prompts, group_ids=group_ids, sampling=sampling)
    times.append(time.perf_counter() - start)
  steady = min(times)
  produced = sum(len(o) for o in out)
  return {"what": "gen_mixed" if adapters else "gen", "model": model_name, "batch": batch,
          "prompt_len": prompt_len, "new_tokens": new_tokens, "adapters": adapters,
          "rank": rank if adapters else 0, "dtype": dtype, "random_weights": random_weights,
          "tokens_per_s": produced / steady,
          "seconds": steady, "compile_s": max(first - steady, 0.0),
          "backend": jax.default_backend(),
          # the CPU kernels ran (perjax.kernels; PERJAX_CPU_KERNELS=0 switches them off)
          "cpu_kernels": generator.packed_head is not None,
          "shared_base": generator.layers is None}
