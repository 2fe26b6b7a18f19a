"""Loading a Hugging Face folder straight into device arrays (perjax.models.streaming_load):
the same weights as reading the folder whole, in the target dtype, sharded where asked, and a
peak host growth close to the weights' own bytes (`perjax bench load`)."""
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from perjax.bench.load import bench_load, write_random_folder
from perjax.models import decoder_loading, hf_loader

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  # a Phi-3 shape: fused checkpoint tensors, read as row blocks
  return write_random_folder("phi-3-mini", tmp_path_factory.mktemp("phi3"), "bfloat16", layers=2)



@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_streamed_weights_equal_the_whole_read(folder, dtype):
  config = hf_loader.read_config(folder)
  whole = decoder_loading.build(config, hf_loader.read_weights(folder, config),
                                param_dtype=dtype)
  streamed = decoder_loading.build_from_folder(config, folder, param_dtype=dtype)
  a, b = nnx.state(whole).to_pure_dict(), nnx.state(streamed).to_pure_dict()
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32))


_SHARDED = """
import sys, numpy as np, jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from pathlib import Path
from flax import nnx
from perjax.models import decoder_loading, hf_loader
folder = Path(sys.argv[1])
mesh = Mesh(np.array(jax.devices()).reshape(4), ("fsdp",))
def rule(path, shape):  # split each leaf's last axis where it divides
  return NamedSharding(mesh, P(*[None] * (len(shape) - 1), "fsdp") if shape[-1] % 4 == 0 else P())
config = hf_loader.read_config(folder)
streamed = decoder_loading.build_from_folder(config, folder, leaf_sharding=rule)
whole = decoder_loading.build(config, hf_loader.read_weights(folder, config))
q = streamed.layers.q[...]
assert len(q.sharding.device_set) == 4 and q.addressable_shards[0].data.shape[-1] == q.shape[-1] // 4
for x, y in zip(jax.tree.leaves(nnx.state(whole)), jax.tree.leaves(nnx.state(streamed))):
  np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
print("ok")
"""


def test_shards_are_read_where_a_sharding_places_them(folder):
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
  out = subprocess.run([sys.executable, "-c", _SHARDED, str(folder)], env=env,
                       capture_output=True, text=True)
  assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_bfloat16_load_grows_host_memory_by_little_more_than_the_weights():
  result = bench_load("smollm2-135m-instruct", random_weights=True)  # 0.27 GB of bfloat16
  assert result["weights_bytes"] > 2.5e8
  assert result["growth_over_weights"] <= 1.3, result
