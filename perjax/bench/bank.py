"""`perjax bench train|generate --bank-dir DIR --users-total N`: the same benchmarks with every
user's LoRA (and AdamW state) in an adapter bank on disk, `perjax.bank`.

Training: each step draws `users_per_step` distinct users of the N, reads their rows into the
device's slots, trains `batch` random rows of `seq` tokens per user and writes the rows back in
the background. Generation: each call serves `batch` prompts of `adapters` users drawn from the
N through an LRU cache of `adapters` slots (every call's users are new, so every row is read;
a user never trained has LoRA B = 0, which costs the same compute as any other row).
Timings cover the whole loop (bank reads, the step, the metrics' transfer); `read_s` and
`write_s` are the median seconds per step (per call) spent reading rows and writing them back
(the writes overlap the next step).
"""
import time

import jax
import numpy as np

from perjax.bank.cache import BankGenerator
from perjax.bank.cohort import CohortSampler
from perjax.bank.rows import RowInit, RowLayout
from perjax.bank.store import AdapterBank
from perjax.bank.train import BankTrainer
from perjax.bench.generate import lora_builder
from perjax.bench.lora_training import lora_training, random_ids, token_rows
from perjax.generation import SamplingConfig
from perjax.models import load
from perjax.models.llama import dims
from perjax.training.objectives import lm_loss
from perjax.training.optim import make_optimizer
from perjax.training.step import init_train_state, make_train_step


def _open_bank(bank_dir, state, personal_tx, config, users_total: int, rank: int, seed: int):
  layout = RowLayout(state.personal, state.opt_personal)
  init = RowInit(layout, lora_builder(1, rank), dims(config), personal_tx, seed)
  return AdapterBank(bank_dir, layout, users_total, init)


def bench_train_bank(model_name: str, *, users_total: int, users_per_step: int, bank_dir,
                     steps: int, batch: int, seq: int, rank: int, dtype: str = "float32",
                     random_weights: bool = False, seed: int = 0, unroll_layers: bool = False,
                     remat: bool = False, loss_chunk: int = 0,
                     attention: str = "default") -> dict:
  slots = users_per_step
  model, graphdef, state, personal_tx, base_tx = lora_training(
      model_name, slots, rank, dtype=dtype, unroll_layers=unroll_layers,
      random_weights=random_weights, seed=seed, remat=remat, loss_chunk=loss_chunk,
      attention=attention)
  step = make_train_step(graphdef, personal_tx, base_tx, lm_loss, slots)
  bank = _open_bank(bank_dir, state, personal_tx, model.config, users_total, rank, seed)
  trainer = BankTrainer(bank, state, step, slots)
  sampler = CohortSampler(users_total, users_per_step, seed)
  rng = np.random.default_rng(seed)
  first = bank.step  # a reused bank continues its step count (and its users' rows)
  times, reads, writes, loss = [], [], [], None
  for s in range(first, first + steps):
    cohort = sampler.cohort(s)
    rows = token_rows(random_ids(rng, (1, slots * batch, seq), model.config.vocab_size),
                      np.repeat(cohort, batch)[None])
    read0, write0 = bank.read_s, bank.write_s
    start = time.perf_counter()
    metrics = trainer.train_step(cohort, rows, jax.random.key(s))
    loss = float(metrics["loss"])  # blocks until the step is done
    times.append(time.perf_counter() - start)
    reads.append(bank.read_s - read0)
    writes.append(bank.write_s - write0)
  start = time.perf_counter()
  trainer.checkpoint()
  checkpoint_s = time.perf_counter() - start
  bank.close()
  steady = float(np.median(times[1:])) if steps > 1 else times[0]
  return {"what": "lora_bank", "model": model_name, "users_total": users_total,
          "users_per_step": users_per_step, "steps": steps, "batch": batch, "seq": seq,
          "rank": rank, "dtype": dtype, "remat": remat, "loss_chunk": loss_chunk,
          "attention": attention, "random_weights": random_weights,
          "tokens_per_s": slots * batch * seq / steady, "step_s": steady,
          "compile_s": max(times[0] - steady, 0.0), "loss": loss,
          "read_s": float(np.median(reads[1:] if steps > 1 else reads)),
          "write_s": float(np.median(writes[1:] if steps > 1 else writes)),
          "checkpoint_s": checkpoint_s, "bank_step": bank.step,
          "bank_bytes": bank.bytes_on_disk(),
          "bank_logical_bytes": users_total * bank.layout.row_bytes,
          "row_bytes": bank.layout.row_bytes, "backend": jax.default_backend()}


def bench_generate_bank(model_name: str, *, users_total: int, bank_dir, adapters: int,
                        batch: int, prompt_len: int, new_tokens: int, rank: int = 8,
                        dtype: str = "bfloat16", random_weights: bool = False,
                        repeats: int = 2, seed: int = 0) -> dict:
  model, tokenizer = load(model_name, personal=lora_builder(adapters, rank), dtype=dtype,
                          param_dtype=dtype, progress=False, random_weights=random_weights,
                          seed=seed)
  _, state, personal_tx, _ = init_train_state(model, make_optimizer("adamw", 1e-4))
  bank = _open_bank(bank_dir, state, personal_tx, model.config, users_total, rank, seed)
  server = BankGenerator(bank, model, tokenizer, stop_at_eos=False)
  sampler = CohortSampler(users_total, adapters, seed)
  rng = np.random.default_rng(0)
  prompts = rng.integers(100, min(40000, model.config.vocab_size), (batch, prompt_len)).tolist()
  sampling = SamplingConfig(max_new_tokens=new_tokens)
  times, reads, out = [], [], None
  for call in range(repeats + 1):
    users = sampler.cohort(call)[np.arange(batch) % adapters]
    read0 = bank.read_s
    start = time.perf_counter()
    out = server.generate_ids(prompts, users=users, sampling=sampling)
    times.append(time.perf_counter() - start)
    reads.append(bank.read_s - read0)
  bank.close()
  steady = min(times[1:])
  return {"what": "gen_bank", "model": model_name, "users_total": users_total,
          "adapters": adapters, "batch": batch, "prompt_len": prompt_len,
          "new_tokens": new_tokens, "rank": rank, "dtype": dtype,
          "random_weights": random_weights,
          "tokens_per_s": sum(len(o) for o in out) / steady, "seconds": steady,
          "compile_s": max(times[0] - steady, 0.0), "read_s": float(np.median(reads[1:])),
          "rows_loaded": server.cache.loaded, "bank_bytes": bank.bytes_on_disk(),
          "backend": jax.default_backend()}
