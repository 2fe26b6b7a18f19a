"""The op counts of the compiled mixed-adapter decoding program (the bench's setting: rank 8 on
q and v, each row its own user; a tiny model). Equal counts before and after a refactor mean XLA
compiled the same program.

  JAX_PLATFORMS=cpu PYTHONPATH=. python experiments/bench/compiled_ops_generate.py
"""
import collections
import re

import jax
import numpy as np
from flax import nnx

from perjax.bench.generate import lora_builder
from perjax.cli.environment import apply_command_defaults
from perjax.generation import Generator, SamplingConfig, _generate
from perjax.models.llama import Llama, tiny_llama_config

apply_command_defaults()  # the `perjax` command's XLA flags, under which the figures were taken

model = Llama(tiny_llama_config(), personal=lora_builder(4, 8), rngs=nnx.Rngs(0))
gen = Generator(model, stop_at_eos=False)
ids, mask = np.ones((4, 32), np.int32), np.ones((4, 32), np.int32)
hlo = _generate.lower(gen.graphdef, gen.state, gen.layers, ids, mask, np.arange(4, dtype=np.int32),
                      jax.random.key(0), sampling=SamplingConfig(max_new_tokens=8), eos_ids=(-1,),
                      pad_id=0).compile().as_text()
print(sorted(collections.Counter(re.findall(r"= \S+ (\w[\w-]*)\(", hlo)).items()))
