"""A tiny bank setup shared by tests/test_bank.py and tests/bank_driver.py: LoRA (and a soft
prompt) on a 2-layer odd-sized Llama, AdamW, deterministic cohorts and batches per step."""
import jax
import numpy as np
import optax
from flax import nnx

from perjax.bank.cohort import CohortSampler
from perjax.bank.rows import RowInit, RowLayout
from perjax.bank.store import AdapterBank
from perjax.bank.train import BankTrainer
from perjax.models.llama import Llama, dims, tiny_llama_config
from perjax.training import batching, objectives, step as steplib
from personal_tiny import personal

USERS, SLOTS, SEQ, ROWS = 11, 3, 9, 6
CONFIG = tiny_llama_config(num_layers=2, vocab_size=67, hidden_size=30, intermediate_size=38,
                           num_heads=3, num_kv_heads=1, head_dim=10)


def builder(groups):
  return personal(groups=groups, rank=3, prompt_len=2)


def tx():
  return optax.adamw(3e-2, weight_decay=0.1)  # decay: the rows' initial values matter


def engine(groups):
  """(state, jitted step, personal optimizer) of a fresh model with `groups` rows."""
  model = Llama(CONFIG, personal=builder(groups), rngs=nnx.Rngs(0))
  graphdef, state, ptx, btx = steplib.init_train_state(model, tx())
  step = steplib.make_train_step(graphdef, ptx, btx, objectives.lm_loss, groups, donate=False)
  return state, step, ptx


def open_bank(directory, state, ptx, users=USERS, seed=5):
  layout = RowLayout(state.personal, state.opt_personal)
  init = RowInit(layout, builder(1), dims(CONFIG), ptx, seed)
  return AdapterBank(directory, layout, users, init)


def sampler():
  return CohortSampler(USERS, SLOTS, seed=1)


def cohort_and_batch(step: int):
  """Step `step`'s users (every third step only two of them) and a batch of their examples."""
  cohort = sampler().cohort(step)[:2 if step % 3 == 2 else SLOTS]
  rng = np.random.default_rng(100 + step)
  exs = []
  for u in cohort:
    for _ in range(int(rng.integers(1, 3))):
      length = int(rng.integers(4, SEQ + 1))
      split = int(rng.integers(1, length - 1))
      ids = rng.integers(3, 67, size=length).tolist()
      exs.append((ids, [0] * split + [1] * (length - split), int(u)))
  exs += [([], [], int(cohort[0]))] * (ROWS - len(exs))  # empty rows: a fixed batch shape
  return cohort, batching.make_batch(exs, SEQ, pad_id=0)


def bank_trainer(directory):
  state, step, ptx = engine(SLOTS)
  bank = open_bank(directory, state, ptx)
  return BankTrainer(bank, state, step, SLOTS)


def all_rows(bank) -> list[np.ndarray]:
  bank.wait()
  return bank.read(np.arange(bank.num_users))


def train(trainer, start: int, stop: int, every: int = 0) -> None:
  for s in range(start, stop):
    cohort, batch = cohort_and_batch(s)
    trainer.train_step(cohort, batch, jax.random.key(s))
    if every and (s + 1) % every == 0:
      trainer.checkpoint()
