"""Several JAX processes as one SPMD program (`jax.distributed`), and a local launcher that
runs a `perjax` command as P processes on one machine (CPU, gloo collectives).

A launched process finds its place in the environment: `PERJAX_COORDINATOR` (host:port of
process 0), `PERJAX_PROCESSES` and `PERJAX_PROCESS_ID`; `initialize_from_env()` joins it. On a
real cluster `initialize_cluster()` calls `jax.distributed.initialize()` with no arguments, which
reads them from the cluster's own environment (see docs/scaling.md).
"""
import codecs
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import jax
import numpy as np

from perjax.errors import PerjaxError

ENV_COORDINATOR, ENV_PROCESSES, ENV_ID = "PERJAX_COORDINATOR", "PERJAX_PROCESSES", "PERJAX_PROCESS_ID"
# How long a process that is done waits at exit for the others: in an experiment process 0
# evaluates alone after training, and that can take hours on a CPU.
SHUTDOWN_TIMEOUT_S = 12 * 3600
# How long the other processes of a local launch get to stop on their own once one has failed
# (they are then killed: they would wait for the failed one in a collective).
_FAILURE_GRACE_S = 5.0


def in_cluster() -> bool:
  """Whether this process was started by `launch_local` (and so must join the others)."""
  return ENV_COORDINATOR in os.environ


def initialize_from_env() -> None:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=os.environ[ENV_COORDINATOR],
                             num_processes=int(os.environ[ENV_PROCESSES]),
                             process_id=int(os.environ[ENV_ID]),
                             shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)


def initialize_cluster() -> None:
  """Joins the processes of a real cluster: `jax.distributed.initialize()` with no arguments
  finds the coordinator, process count and id in the environment of a cluster it knows
  (Slurm, Cloud TPU, Open MPI, Kubernetes). Elsewhere set PERJAX_COORDINATOR, PERJAX_PROCESSES
  and PERJAX_PROCESS_ID on each host and pass `--processes H` (`initialize_from_env`)."""
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU clusters; others ignore it
  try:
    jax.distributed.initialize(shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
  except (ValueError, RuntimeError) as e:
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise PerjaxError(f"jax.distributed.initialize() found no cluster to join ({reason}); "
                      "start this on every host with the cluster's launcher (srun, ...), or "
                      "use --processes P on one machine") from None


def is_primary() -> bool:
  """Whether this is process 0 (also true without jax.distributed): the one that writes."""
  return jax.process_index() == 0


_said = itertools.count()


def from_primary(value: str = "") -> str:
  """Process 0's `value`, returned in every process (the others' argument is ignored). It goes
  through the coordination service's key-value store rather than a collective, so the others
  may wait for it for hours (process 0 evaluating alone). Every process must make the same
  sequence of calls."""
  from jax._src import distributed as jax_distributed
  client = jax_distributed.global_state.client  # as orbax's multi-host code reads it
  if client is None:  # one process
    return value
  key = f"perjax/from_primary/{next(_said)}"
  if is_primary():
    client.key_value_set(key, value)
    return value
  return client.blocking_key_value_get(key, SHUTDOWN_TIMEOUT_S * 1000)


def join(argv, processes: int, cluster: bool = False) -> str | None:
  """The start of a command that can run as several processes (`--processes P`,
  `--distributed`): joins this process to the others and returns None (the command goes on
  here), or, in the process the user started with `--processes P`, launches the P processes
  and returns process 0's output (the command is done)."""
  if cluster:
    initialize_cluster()
  elif processes > 1:
    if not in_cluster():
      return launch_local(argv, processes, timeout=None, echo_stderr=True)
    initialize_from_env()
  return None


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch_local(argv, processes: int, timeout: float | None = 1800,
                 echo_stderr: bool = False) -> str:
  """Run `perjax ARGV` as `processes` local CPU processes joined by jax.distributed; returns
  process 0's standard output, less gloo's connection lines (raises with a failing process's
  last error line). `timeout`: seconds, None for no limit; `echo_stderr`: process 0's standard
  error (progress bars, notes) also goes to this process's, as it comes."""
  coordinator = f"localhost:{_free_port()}"
  with tempfile.TemporaryDirectory() as logs:
    procs, echoes = [], []
    for i in range(processes):
      env = {**os.environ, ENV_COORDINATOR: coordinator, ENV_PROCESSES: str(processes),
             ENV_ID: str(i), "JAX_PLATFORMS": "cpu"}
      out = open(os.path.join(logs, f"{i}.out"), "w")
      err = open(os.path.join(logs, f"{i}.err"), "w")
      echo = echo_stderr and i == 0
      proc = subprocess.Popen([sys.executable, "-m", "perjax", *argv], env=env, stdout=out,
                              stderr=subprocess.PIPE if echo else err)
      if echo:
        echoes.append(threading.Thread(target=_tee, args=(proc.stderr, err), daemon=True))
        echoes[-1].start()
      procs.append((proc, out, err))
    try:
      codes = _wait_all([p for p, _, _ in procs], timeout)
    finally:
      for thread in echoes:
        thread.join()
      for _, out, err in procs:
        out.close()
        err.close()
    if codes is None:
      raise PerjaxError(f"a process of {processes} ran past {timeout:.0f} s")
    for i, code in enumerate(codes):
      if code:
        lines = open(os.path.join(logs, f"{i}.err")).read().strip().splitlines()
        raise PerjaxError(f"process {i} of {processes} failed ({code}): "
                          f"{lines[-1] if lines else 'no error output'}")
    out = open(os.path.join(logs, "0.out")).read().splitlines(keepends=True)
    return "".join(line for line in out if not line.startswith("[Gloo]"))  # gloo's own chatter


def _tee(pipe, log) -> None:
  """Copies a child's standard error to ours and to its log file, until it closes."""
  decode = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a chunk may end mid-char
  while chunk := os.read(pipe.fileno(), 4096):
    text = decode.decode(chunk)
    sys.stderr.write(text)
    sys.stderr.flush()
    log.write(text)
  pipe.close()


def _wait_all(procs, timeout: float | None) -> list | None:
  """The exit codes of `procs` (None if they ran past `timeout`: all killed). Once one fails,
  the others get a few seconds, then are killed; those get code None, so that the failure
  reported is the one that started it."""
  deadline = float("inf") if timeout is None else time.monotonic() + timeout
  failed_at = None
  try:
    while True:
      codes = [p.poll() for p in procs]
      if all(c is not None for c in codes):
        return codes
      now = time.monotonic()
      if failed_at is None and any(c for c in codes):
        failed_at = now
      if now > deadline or (failed_at is not None and now - failed_at > _FAILURE_GRACE_S):
        _kill_running(procs)
        return None if failed_at is None else codes
      time.sleep(0.05)
  except BaseException:  # Ctrl-C in the launcher: no process is left behind
    _kill_running(procs)
    raise


def _kill_running(procs) -> None:
  for p in procs:
    if p.poll() is None:
      p.kill()
      p.wait()


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


def local_copy(tree):
  """The inverse of `replicate`: global arrays as arrays of this process's first device, for
  work that runs in one process (evaluation). One split over processes (a base sharded over a
  mesh across hosts) is gathered into every process (`multihost_utils.process_allgather`)."""
  from jax.experimental import multihost_utils

  def one(x):
    if _is_key(x):
      return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
      return x
    if not x.is_fully_replicated:
      whole = multihost_utils.process_allgather(x, tiled=True)
      return jax.device_put(whole, jax.local_devices()[0])
    return x.addressable_data(0)
  return jax.tree.map(one, tree)


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
