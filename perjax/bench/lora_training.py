"""The training benches' shared setup: a model with a fresh rank-R LoRA table on q and v and
AdamW at 1e-4 (the reference script's setting), and batches of random-token rows."""
import numpy as np

from perjax.bench.generate import lora_builder
from perjax.models import load
from perjax.models.weight_bits import worth_storing_as_bits
from perjax.training.model_options import set_training_options
from perjax.training.optim import make_optimizer
from perjax.training.step import init_train_state


def lora_training(model_name: str, groups: int, rank: int, *, dtype: str = "float32",
                  unroll_layers: bool = False, random_weights: bool = False, seed: int = 0,
                  remat: bool = False, loss_chunk: int = 0, attention: str = "default",
                  train_base: bool = False, leaf_sharding=None):
  """(model, graphdef, TrainState, personal_tx, base_tx) with a table of `groups` rows. The
  base (frozen, or trained with its own AdamW state under `train_base`) is stored in the compute
  dtype; the LoRA weights and their AdamW moments stay float32. `leaf_sharding(path, shape)`
  places each base leaf as it is made (see `models.load_decoder`). A frozen bfloat16 base on
  CPU is stored as its bits (`models.weight_bits`)."""
  model, _ = load(model_name, personal=lora_builder(groups, rank), dtype=dtype, param_dtype=dtype,
                  progress=False, random_weights=random_weights, seed=seed,
                  unroll_layers=unroll_layers, leaf_sharding=leaf_sharding,
                  # see models.weight_bits: no float32 copy of the base in the step
                  frozen_bits=worth_storing_as_bits(dtype, train_base))
  set_training_options(model, remat=remat, loss_chunk=loss_chunk, attention=attention)
  graphdef, state, personal_tx, base_tx = init_train_state(model, make_optimizer("adamw", 1e-4),
                                                           train_base=train_base)
  return model, graphdef, state, personal_tx, base_tx


def random_ids(rng: np.random.Generator, shape, vocab_size: int) -> np.ndarray:
  """int32 token ids of `shape`, clear of the first 100 (special) ids and of rare ids above
  40,000; a tiny test vocabulary uses all of its ids."""
  vocab = min(40000, vocab_size)
  return rng.integers(100 if vocab > 100 else 0, vocab, shape).astype(np.int32)


def token_rows(ids: np.ndarray, group_ids: np.ndarray) -> dict:
  """A training batch of `ids` [accum, rows, L] in which every token counts; `group_ids`
  [accum, rows] are the rows' users."""
  return {"input_ids": ids, "loss_mask": np.ones_like(ids), "attention_mask": np.ones_like(ids),
          "group_ids": group_ids}
