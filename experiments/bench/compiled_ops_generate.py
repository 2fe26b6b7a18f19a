"""The op counts of the compiled mixed-adapter decoding program (the bench's setting: rank 8 on
q and v, each row its own user; a tiny model). Equal counts before and after a refactor mean XLA
compiled the same program. The program is the one `Generator.generate_ids` runs, read from the
optimised HLO that XLA dumps for it.

  JAX_PLATFORMS=cpu PYTHONPATH=. python experiments/bench/compiled_ops_generate.py
"""
import collections
import glob
import os
import re
import tempfile

DUMP = tempfile.mkdtemp(prefix="perjax-hlo-")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_dump_to={DUMP} --xla_dump_hlo_as_text").strip()

from perjax.cli.environment import apply_command_defaults  # noqa: E402

apply_command_defaults()  # the `perjax` command's XLA flags, under which the figures were taken

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from perjax.bench.generate import lora_builder  # noqa: E402
from perjax.generation import Generator, SamplingConfig  # noqa: E402
from perjax.models.llama import Llama, tiny_llama_config  # noqa: E402

# a program read from the persistent compilation cache is not compiled, so not dumped
jax.config.update("jax_enable_compilation_cache", False)

model = Llama(tiny_llama_config(), personal=lora_builder(4, 8), rngs=nnx.Rngs(0))
gen = Generator(model, stop_at_eos=False)
gen.generate_ids(np.ones((4, 32), np.int32).tolist(), group_ids=np.arange(4, dtype=np.int32),
                 sampling=SamplingConfig(max_new_tokens=8))
# the decoding program is the largest module compiled (the others: model set-up, padding)
hlo = open(max(glob.glob(f"{DUMP}/*after_optimizations.txt"), key=os.path.getsize)).read()
print(sorted(collections.Counter(re.findall(r"= \S+ (\w[\w-]*)\(", hlo)).items()))
