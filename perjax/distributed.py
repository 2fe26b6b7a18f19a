"""Several JAX processes as one SPMD program (`jax.distributed`), and a local launcher that
runs a `perjax` command as P processes on one machine (CPU, gloo collectives).

A launched process finds its place in the environment: `PERJAX_COORDINATOR` (host:port of
process 0), `PERJAX_PROCESSES` and `PERJAX_PROCESS_ID`; `initialize_from_env()` joins it. On a
real cluster call `jax.distributed.initialize()` instead (see docs/scaling.md).
"""
import os
import socket
import subprocess
import sys
import tempfile

import jax
import numpy as np

from perjax.errors import PerjaxError

ENV_COORDINATOR, ENV_PROCESSES, ENV_ID = "PERJAX_COORDINATOR", "PERJAX_PROCESSES", "PERJAX_PROCESS_ID"


def in_cluster() -> bool:
  """Whether this process was started by `launch_local` (and so must join the others)."""
  return ENV_COORDINATOR in os.environ


def initialize_from_env() -> None:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=os.environ[ENV_COORDINATOR],
                             num_processes=int(os.environ[ENV_PROCESSES]),
                             process_id=int(os.environ[ENV_ID]))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch_local(argv, processes: int, timeout: float = 1800) -> str:
  """Run `perjax ARGV` as `processes` local CPU processes joined by jax.distributed; returns
  process 0's standard output, less gloo's connection lines (raises with a failing process's
  last error line)."""
  coordinator = f"localhost:{_free_port()}"
  with tempfile.TemporaryDirectory() as logs:
    procs = []
    for i in range(processes):
      env = {**os.environ, ENV_COORDINATOR: coordinator, ENV_PROCESSES: str(processes),
             ENV_ID: str(i), "JAX_PLATFORMS": "cpu"}
      out = open(os.path.join(logs, f"{i}.out"), "w")
      err = open(os.path.join(logs, f"{i}.err"), "w")
      procs.append((subprocess.Popen([sys.executable, "-m", "perjax", *argv], env=env,
                                     stdout=out, stderr=err), out, err))
    codes = []
    for proc, out, err in procs:
      try:
        codes.append(proc.wait(timeout=timeout))
      except subprocess.TimeoutExpired:
        for p, _, _ in procs:
          p.kill()
        raise PerjaxError(f"a process of {processes} ran past {timeout:.0f} s") from None
      finally:
        out.close()
        err.close()
    for i, code in enumerate(codes):
      if code:
        lines = open(os.path.join(logs, f"{i}.err")).read().strip().splitlines()
        raise PerjaxError(f"process {i} of {processes} failed ({code}): "
                          f"{lines[-1] if lines else 'no error output'}")
    out = open(os.path.join(logs, "0.out")).read().splitlines(keepends=True)
    return "".join(line for line in out if not line.startswith("[Gloo]"))  # gloo's own chatter


def _is_key(x) -> bool:
  return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def replicate(tree, shardings):
  """`tree` (the same values in every process) as global arrays with `shardings` (a tree, or
  one sharding for every leaf); keys included."""
  def one(x, sharding):
    if _is_key(x):
      return jax.random.wrap_key_data(one(jax.random.key_data(x), sharding),
                                      impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
  if isinstance(shardings, jax.sharding.Sharding):
    return jax.tree.map(lambda x: one(x, shardings), tree)
  return jax.tree.map(one, tree, shardings)


def process_slice(sharding, shape) -> tuple:
  """The index of the block of a global array of `shape` that this process's devices hold."""
  held = list(sharding.addressable_devices_indices_map(tuple(shape)).values())
  out = []
  for axis, size in enumerate(shape):
    starts = [(i[axis].start or 0) for i in held]
    stops = [size if i[axis].stop is None else i[axis].stop for i in held]
    out.append(slice(min(starts), max(stops)))
  return tuple(out)


def from_process_slices(tree, shardings):
  """Global arrays of `tree`'s shapes in which this process supplies only its own rows:
  `jax.make_array_from_process_local_data` on each leaf's `process_slice`."""
  def one(x, sharding):
    x = np.asarray(x)
    local = x[process_slice(sharding, x.shape)]
    return jax.make_array_from_process_local_data(sharding, local, x.shape)
  return jax.tree.map(one, tree, shardings)
