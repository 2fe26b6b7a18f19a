"""`perjax bench train`: multi-user LoRA training throughput.

The same total work as `hf_peft_baseline.py --what lora` (U users x S steps x B x L random
tokens, fresh rank-R LoRA on q and v per user, AdamW lr 1e-4), but all users train together:
each step is one compiled call on a [U*B, L] batch whose rows carry their user's group id.
"""
import time

import jax
import numpy as np

from perjax.models import PersonalConfig, load
from perjax.training.objectives import lm_loss
from perjax.training.optim import make_optimizer
from perjax.training.step import init_train_state, make_train_step


def bench_train(model_name: str, *, users: int, steps: int, batch: int, seq: int, rank: int,
                devices: int = 1, dtype: str = "float32", seed: int = 0) -> dict:
  personal = PersonalConfig(groups=users, lora_rank=rank, lora_targets=("q", "v"))
  model, _ = load(model_name, personal=personal, dtype=dtype, progress=False, seed=seed)
  graphdef, state, personal_tx, base_tx = init_train_state(model, make_optimizer("adamw", 1e-4))
  shard_batch = lambda b: b
  step_kwargs = {}
  if devices > 1:
    from perjax import sharding
    mesh = sharding.make_mesh(devices)
    state, step_kwargs, shard_batch = sharding.shard_for_training(mesh, state)
  step = make_train_step(graphdef, personal_tx, base_tx, lm_loss, users, **step_kwargs)

  rng = np.random.default_rng(seed)
  vocab = min(40000, model.config.vocab_size)
  group_ids = np.repeat(np.arange(users, dtype=np.int32), batch)[None]  # [accum=1, U*B]
  times, loss = [], None
  for s in range(steps):
    ids = rng.integers(100 if vocab > 100 else 0, vocab, (1, users * batch, seq)).astype(np.int32)
    batch_arrays = shard_batch({"input_ids": ids, "loss_mask": np.ones_like(ids),
                                "attention_mask": np.ones_like(ids), "group_ids": group_ids})
    start = time.perf_counter()
    state, metrics = step(state, batch_arrays, jax.random.key(s))
    loss = float(metrics["loss"])  # blocks until the step is done
    times.append(time.perf_counter() - start)
  steady = np.median(times[1:]) if steps > 1 else times[0]
  tokens_per_step = users * batch * seq
  return {"what": "lora", "model": model_name, "users": users, "steps": steps, "batch": batch,
          "seq": seq, "rank": rank, "devices": devices, "dtype": dtype,
          "tokens_per_s": tokens_per_step / steady, "compile_s": max(times[0] - steady, 0.0),
          "loss": loss, "backend": jax.default_backend()}
