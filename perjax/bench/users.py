"""`perjax bench users`: stacked multi-user training against training one user after another.

Each of U users has E examples (random tokens) and gets one optimizer update from them, as a
fresh rank-R LoRA on q and v. Stacked: K users share each compiled step (K x E rows, the table
holding all U users' rows). One after another: a one-user table, reset to that user's initial
row before its step, one user per step. Both start every user from the same initial row and
train it on the same rows, so they end with the same adapters (tested); the figure is how many
users per second each trains, and their ratio.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np

from perjax.bench.lora_training import lora_training, random_ids, token_rows
from perjax.errors import ConfigError
from perjax.training.objectives import lm_loss
from perjax.training.step import make_train_step


def _setup(model_name, groups, rank, **options):
  """(the jitted train step for a table of `groups` users, its initial TrainState, vocab)."""
  model, graphdef, state, personal_tx, base_tx = lora_training(model_name, groups, rank,
                                                               **options)
  step = make_train_step(graphdef, personal_tx, base_tx, lm_loss, groups)
  return step, state, model.config.vocab_size


def _rows(ids: np.ndarray, group_ids: np.ndarray) -> dict:
  return token_rows(ids[None], group_ids[None])  # one micro-batch


def train_stacked(users, examples, seq, users_per_step, *, model_name, rank, seed=0,
                  **options) -> dict:
  """Users in steps of `users_per_step`, all U users' rows in one table: {state, initial (the
  table's rows before training), tokens [U, E, L], seconds (without compilation), compile_s}."""
  step, state, vocab = _setup(model_name, users, rank, seed=seed, **options)
  initial = jax.tree.map(jnp.copy, state.personal)
  tokens = random_ids(np.random.default_rng(seed), (users, examples, seq), vocab)
  chunks = [np.arange(start, start + users_per_step)
            for start in range(0, users, users_per_step)]
  batches = [_rows(tokens[c].reshape(-1, seq), np.repeat(c, examples).astype(np.int32))
             for c in chunks]
  # compile on a throwaway copy, so that every user still gets exactly one update
  start = time.perf_counter()
  warm, _ = step(jax.tree.map(jnp.copy, state), batches[0], jax.random.key(0))
  jax.block_until_ready(warm)
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for i, batch in enumerate(batches):
    state, metrics = step(state, batch, jax.random.key(i))
  jax.block_until_ready(state)
  return {"state": state, "initial": initial, "tokens": tokens,
          "seconds": time.perf_counter() - start, "compile_s": compile_s}


def train_one_after_another(tokens, initial_personal, *, model_name, rank, **options):
  """(each user's final personal state, seconds without compilation, compile seconds): a
  one-user table, reset before each user's step to that user's row of `initial_personal`
  (the stacked table's initial rows, so that both start every user alike)."""
  users, examples, _ = tokens.shape
  step, state, _ = _setup(model_name, 1, rank, **options)
  zeros = np.zeros((examples,), np.int32)
  fresh_opt = state.opt_personal
  row = jax.jit(lambda table, u: jax.tree.map(
      lambda x: jax.lax.dynamic_slice_in_dim(x, u, 1, axis=0), table))

  def reset(state, u):
    return state.replace(personal=row(initial_personal, u),
                         opt_personal=jax.tree.map(jnp.copy, fresh_opt))

  start = time.perf_counter()
  warm, _ = step(reset(jax.tree.map(jnp.copy, state), 0), _rows(tokens[0], zeros),
                 jax.random.key(0))
  jax.block_until_ready(warm)
  compile_s = time.perf_counter() - start
  trained = []
  start = time.perf_counter()
  for u in range(users):
    state, metrics = step(reset(state, u), _rows(tokens[u], zeros), jax.random.key(u))
    trained.append(state.personal)
  jax.block_until_ready(trained)
  return trained, time.perf_counter() - start, compile_s


def bench_users(model_name: str, *, users: int, examples: int, users_per_step: int, seq: int,
                rank: int, dtype: str = "float32", unroll_layers: bool = False,
                random_weights: bool = False, seed: int = 0, loss_chunk: int = 0,
                attention: str = "default") -> dict:
  if users % users_per_step:
    raise ConfigError(f"--users ({users}) must be a multiple of --users-per-step "
                      f"({users_per_step}), so that every stacked step has the same shape")
  kwargs = dict(model_name=model_name, rank=rank, dtype=dtype, unroll_layers=unroll_layers,
                random_weights=random_weights, seed=seed, loss_chunk=loss_chunk,
                attention=attention)
  stacked = train_stacked(users, examples, seq, users_per_step, **kwargs)
  del stacked["state"]  # frees the stacked table (and its copy of the base) before the second run
  stacked_s = stacked["seconds"]
  _, sequential_s, sequential_compile = train_one_after_another(stacked["tokens"],
                                                                stacked["initial"], **kwargs)
  return {"what": "users", "model": model_name, "users": users, "examples": examples,
          "users_per_step": users_per_step, "seq": seq, "rank": rank, "dtype": dtype,
          "unroll_layers": unroll_layers, "loss_chunk": loss_chunk, "attention": attention,
          "backend": jax.default_backend(),
          "stacked_users_per_s": users / stacked_s,
          "one_after_another_users_per_s": users / sequential_s,
          "ratio": sequential_s / stacked_s,
          "stacked_tokens_per_s": users * examples * seq / stacked_s,
          "compile_s": stacked["compile_s"] + sequential_compile}
