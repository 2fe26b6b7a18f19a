"""The adapter bank on disk: `N` users' packed rows (`rows.RowLayout`) in TensorStore zarr3
arrays `[N, row_bytes]` of uint8, one chunk per user, created empty (only metadata is written;
a chunk appears when its user is first written).

Two arrays, so that a checkpoint is atomic and writes only dirty rows:

- `committed/`: every row as of the last checkpoint;
- `scratch/`: rows written since then (the training loop's asynchronous write-back goes here);
  which users they are (the dirty set) lives only in memory until a checkpoint.

A checkpoint (1) waits for the pending writes, (2) atomically writes `commit.json` naming the
dirty users and the step (the commit point), (3) copies those rows from scratch to committed,
(4) atomically replaces `state.json` and removes `commit.json`. Opening a bank redoes (3)-(4)
if `commit.json` is there (the copy is idempotent), and forgets the scratch rows otherwise: a run
killed at any moment resumes from its last complete checkpoint. TensorStore's file driver
writes each chunk to a temporary file and renames it, so no user's row is ever torn.
"""
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
import tensorstore as ts

from perjax.bank.rows import RowInit, RowLayout
from perjax.errors import ConfigError

META_FILE, STATE_FILE, COMMIT_FILE = "bank.json", "state.json", "commit.json"


def _write_json(path: Path, value) -> None:
  tmp = path.with_name(path.name + ".tmp")
  with open(tmp, "w") as f:
    json.dump(value, f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _open_rows(path: Path, num_users: int, row_bytes: int):
  spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)},
          "metadata": {"shape": [num_users, row_bytes], "data_type": "uint8", "fill_value": 0,
                       "chunk_grid": {"name": "regular",
                                      "configuration": {"chunk_shape": [1, row_bytes]}}}}
  return ts.open(spec, create=True, open=True).result()


class AdapterBank:
  """The rows of `num_users` users in `directory` (created, or reopened when its layout
  matches). `init` gives the row of a user never written (`rows.RowInit`)."""

  def __init__(self, directory, layout: RowLayout, num_users: int, init: RowInit):
    if num_users < 1:
      raise ConfigError(f"an adapter bank needs at least one user, got {num_users}")
    self.directory = Path(directory)
    self.layout, self.num_users, self.init = layout, num_users, init
    self.directory.mkdir(parents=True, exist_ok=True)
    meta = {"num_users": num_users, "row_bytes": layout.row_bytes, "leaves": layout.describe()}
    meta_path = self.directory / META_FILE
    if meta_path.exists():
      found = json.loads(meta_path.read_text())
      if found != meta:
        diff = sorted(k for k in meta if found.get(k) != meta[k])
        raise ConfigError(f"{self.directory} holds a bank with other {', '.join(diff)} "
                          f"(users {found.get('num_users')}, row of {found.get('row_bytes')} "
                          f"bytes); use another --bank-dir")
    else:
      _write_json(meta_path, meta)
    self.committed = _open_rows(self.directory / "committed", num_users, layout.row_bytes)
    self.scratch = _open_rows(self.directory / "scratch", num_users, layout.row_bytes)
    self.dirty: set[int] = set()
    self._jobs: list[tuple[frozenset, Future]] = []
    self._lock = threading.Lock()
    self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bank-write")
    self.read_s = self.write_s = 0.0  # seconds spent reading / writing rows (the writes overlap)
    self._finish_commit()
    state = self.directory / STATE_FILE
    self.state = json.loads(state.read_text()) if state.exists() else {"step": 0}

  # -- rows in and out ------------------------------------------------------------------------
  def read(self, users, *, personal_only: bool = False) -> list[np.ndarray]:
    """The users' rows as leaves `[k, ...]` (`personal_only`: the personal tables alone)."""
    start = time.perf_counter()
    users = self._check(users)
    self._wait_for(users)
    width = self.layout.personal_bytes if personal_only else self.layout.row_bytes
    dirty = np.array([u in self.dirty for u in users.tolist()], bool)
    raw = np.empty((len(users), width), np.uint8)
    reads = [(mask, store[users[mask], :width].read()) for mask, store in
             ((dirty, self.scratch), (~dirty, self.committed)) if mask.any()]
    for mask, future in reads:
      raw[mask] = future.result()
    leaves = self.layout.unpack(raw, personal_only)
    fresh = ~self.layout.written(raw)
    if fresh.any():
      for leaf, init in zip(leaves, self.init(users[fresh])):
        leaf[fresh] = init
    self.read_s += time.perf_counter() - start
    return leaves

  def write_async(self, users, leaves) -> Future:
    """Write the users' rows (leaves `[>= k, ...]`: slot i holds users[i]; device arrays are
    fine) to scratch in the background; a later `read` of these users waits for it."""
    users = self._check(users)
    self.dirty.update(users.tolist())
    future = self._pool.submit(self._write, users, leaves)
    with self._lock:
      self._jobs.append((frozenset(users.tolist()), future))
    return future

  def _write(self, users, leaves) -> None:
    k = len(users)
    host = [np.asarray(x[:k]) for x in jax.device_get(leaves)]  # waits for the step to finish
    start = time.perf_counter()  # the write itself, not the wait for the step
    order = np.argsort(users)  # ascending user ids: the chunks are visited in order
    self.scratch[users[order]].write(self.layout.pack(host)[order]).result()
    self.write_s += time.perf_counter() - start

  def _wait_for(self, users) -> None:
    wanted = set(users.tolist())
    with self._lock:
      jobs = [f for u, f in self._jobs if u & wanted]
    for f in jobs:
      f.result()
    with self._lock:
      self._jobs = [(u, f) for u, f in self._jobs if not f.done()]

  def wait(self) -> None:
    """Every write submitted so far is on disk (raises the first write's error, if any)."""
    with self._lock:
      jobs, self._jobs = [f for _, f in self._jobs], []
    for f in jobs:
      f.result()

  def _check(self, users) -> np.ndarray:
    users = np.asarray(users, np.int64).reshape(-1)
    if users.size and (users.min() < 0 or users.max() >= self.num_users):
      bad = users[(users < 0) | (users >= self.num_users)][0]
      raise ConfigError(f"user {bad} is outside the bank's [0, {self.num_users})")
    if len(set(users.tolist())) != len(users):
      raise ConfigError("a bank read or write names a user twice")
    return users

  # -- checkpoints ----------------------------------------------------------------------------
  @property
  def step(self) -> int:
    return int(self.state["step"])

  def checkpoint(self, step: int, **extra) -> None:
    """Make the rows written so far the bank's committed state at `step` (see the module
    docstring); `extra` (JSON values) is stored with the step."""
    self.wait()
    _write_json(self.directory / COMMIT_FILE,
                {"users": sorted(self.dirty), "state": {"step": int(step), **extra}})
    self._finish_commit()

  def _finish_commit(self) -> None:
    commit = self.directory / COMMIT_FILE
    if commit.exists():
      pending = json.loads(commit.read_text())
      users = np.asarray(pending["users"], np.int64)
      for start in range(0, len(users), 4096):  # bounded host memory for big commits
        part = users[start:start + 4096]
        self.committed[part].write(self.scratch[part].read().result()).result()
      _write_json(self.directory / STATE_FILE, pending["state"])
      self.state = pending["state"]
      commit.unlink()
    self.dirty = set()  # scratch rows outside a commit are forgotten

  def bytes_on_disk(self) -> int:
    return sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file())

  def close(self) -> None:
    self.wait()
    self._pool.shutdown()
