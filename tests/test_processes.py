"""`perjax bench train --processes P`: P local JAX processes joined by jax.distributed (gloo on
CPU), each supplying only its slice of every batch, train to the loss of one process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["bench", "train", "--model", "tiny-llama", "--users", "4", "--steps", "2", "--batch", "2",
        "--seq", "16", "--rank", "3", "--json"]


def _bench(*extra):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  done = subprocess.run([sys.executable, "-m", "perjax", *ARGS, *extra], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-2000:]
  lines = done.stdout.strip().splitlines()
  assert len(lines) == 1, done.stdout  # one JSON line, whatever the number of processes
  return json.loads(lines[0])


@pytest.mark.slow
def test_two_processes_train_to_the_loss_of_one():
  one, two = _bench("--processes", "1"), _bench("--processes", "2")
  assert one["processes"] == 1 and two["processes"] == 2
  assert np.isfinite(one["loss"]) and one["loss"] > 1.0
  assert abs(two["loss"] - one["loss"]) <= 1e-5


def test_process_slice_covers_this_process_rows():
  """On one process the slice is the whole array (every device is addressable)."""
  import jax
  from perjax import distributed, sharding
  mesh = sharding.make_mesh(groups=1)
  batch_sh = sharding.batch_shardings({"x": np.zeros((1, 4, 3))}, mesh)["x"]
  assert distributed.process_slice(batch_sh, (1, 4, 3)) == (slice(0, 1), slice(0, 4),
                                                             slice(0, 3))
  x = np.arange(12.0).reshape(1, 4, 3)
  np.testing.assert_array_equal(np.asarray(distributed.from_process_slices(x, batch_sh)), x)
  key = distributed.replicate(jax.random.key(3), sharding.replicated(mesh))
  np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(jax.random.key(3)))
