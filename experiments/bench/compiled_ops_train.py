"""The op counts of the compiled multi-user LoRA train step (the bench's setting: rank 8 on q
and v, AdamW, 4 users; a tiny model so it compiles in seconds). Equal counts before and after a
refactor mean XLA compiled the same program.

  JAX_PLATFORMS=cpu PYTHONPATH=. python experiments/bench/compiled_ops_train.py
"""
import collections
import re

import jax
from flax import nnx

from perjax.bench.generate import lora_builder
from perjax.cli.environment import apply_command_defaults
from perjax.models.llama import Llama, tiny_llama_config
from perjax.training import batching
from perjax.training.objectives import lm_loss
from perjax.training.optim import make_optimizer
from perjax.training.step import init_train_state, make_train_step

apply_command_defaults()  # the `perjax` command's XLA flags, under which the figures were taken

model = Llama(tiny_llama_config(), personal=lora_builder(4, 8), rngs=nnx.Rngs(0))
graphdef, state, personal_tx, base_tx = init_train_state(model, make_optimizer("adamw", 1e-4))
step = make_train_step(graphdef, personal_tx, base_tx, lm_loss, 4, donate=False)
rows = [(list(range(3, 40)), [0] * 10 + [1] * 27, i % 4) for i in range(8)]
hlo = step.lower(state, batching.make_batch(rows, 37, 0), jax.random.key(0)).compile().as_text()
print(sorted(collections.Counter(re.findall(r"= \S+ (\w[\w-]*)\(", hlo)).items()))
