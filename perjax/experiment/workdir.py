"""One run per workdir: an exclusive lock file, the config claim, and the finished check.

`DIR/.lock` holds the owner's pid, host and process start time. It is created with
O_CREAT | O_EXCL, so of two runs started together exactly one gets it; the other stops at once
with a line that names the holder. A lock left by a process that died (SIGKILL, power loss) on
this host is taken over; one from another host is reported, since its owner cannot be checked.
The config claim and the finished check run under the lock, so two runs can never interleave
their config.json, checkpoints and metrics.json.
"""
import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from perjax.errors import ConfigError, PerjaxError
from perjax.experiment.config import defaults, flatten

LOCK_FILE = ".lock"
CONFIG_FILE, METRICS_FILE = "config.json", "metrics.json"
# A lock file that stays empty this long was left by a process killed between open and write.
_EMPTY_LOCK_GRACE_S = 10.0


class WorkdirBusy(PerjaxError):
  """Another live process holds the workdir."""

  def __init__(self, workdir: Path, holder: dict):
    self.workdir, self.holder = workdir, holder
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    if holder.get("argv"):
      who += f" ({' '.join(holder['argv'])[:120]})"
    super().__init__(f"{workdir} is in use by {who}; wait for it to finish, or remove "
                     f"{workdir / LOCK_FILE} if that process is gone")


def _start_time(pid: int) -> str | None:
  """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
  try:
    stat = Path(f"/proc/{pid}/stat").read_text()
  except OSError:
    return None
  return stat.rpartition(")")[2].split()[19]  # field 22; the name in (...) may hold spaces


def _alive(holder: dict) -> bool:
  pid = holder.get("pid")
  if not isinstance(pid, int) or pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, owned by another user
    return True
  started = holder.get("start")
  return started is None or _start_time(pid) in (None, started)


def _read(path: Path) -> dict | None:
  """The holder recorded in a lock file; {} while its writer has not written yet; None if gone."""
  try:
    text = path.read_text()
  except (FileNotFoundError, NotADirectoryError):
    return None
  except OSError:
    return {}
  try:
    holder = json.loads(text) if text.strip() else {}
  except json.JSONDecodeError:
    holder = {}
  return holder if isinstance(holder, dict) else {}


def _stale(path: Path, holder: dict) -> bool:
  if not holder:  # empty or garbled: stale only once its writer has had ample time
    try:
      return time.time() - path.stat().st_mtime > _EMPTY_LOCK_GRACE_S
    except FileNotFoundError:
      return False
  return holder.get("host") == socket.gethostname() and not _alive(holder)


def _os_error(workdir: Path, e: OSError) -> PerjaxError:
  if isinstance(e, PermissionError):
    return PerjaxError(f"{workdir} is not writable ({e.strerror.lower()}); choose another "
                       "--workdir or fix its permissions")
  if isinstance(e, (NotADirectoryError, FileExistsError)):
    return PerjaxError(f"{workdir} is a file, or lies under a file; --workdir must be a folder")
  return PerjaxError(f"{workdir}: {e.strerror or e}")


class WorkdirLock:
  """`with WorkdirLock(dir):` holds DIR/.lock for the duration, or raises WorkdirBusy."""

  def __init__(self, workdir):
    self.workdir = Path(workdir)
    self.path = self.workdir / LOCK_FILE
    self.held = False

  def _create(self) -> bool:
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid()),
          "argv": [Path(sys.argv[0]).name, *sys.argv[1:]]}
    with os.fdopen(fd, "w") as f:
      f.write(json.dumps(me) + "\n")
    self.held = True
    return True

  def _take_over(self, seen: dict) -> None:
    """Removes a stale lock, guarded so that two runs finding it stale cannot both proceed
    (the second would otherwise delete the first's fresh lock)."""
    guard = self.workdir / (LOCK_FILE + ".takeover")
    try:
      fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:  # another run is taking over; a guard left by a crash expires
      with contextlib.suppress(FileNotFoundError):
        if time.time() - guard.stat().st_mtime > _EMPTY_LOCK_GRACE_S:
          guard.unlink()
      return
    os.close(fd)
    try:
      if _read(self.path) == seen:  # still the same stale holder: nobody took it meanwhile
        with contextlib.suppress(FileNotFoundError):
          self.path.unlink()
        if seen:
          print(f"{self.workdir}: taking over the lock of pid {seen.get('pid')}, which is no "
                "longer running", file=sys.stderr)
    finally:
      guard.unlink()

  def acquire(self) -> "WorkdirLock":
    if self.workdir.exists() and not self.workdir.is_dir():
      raise PerjaxError(f"{self.workdir} is a file; --workdir must be a folder")
    try:
      self.workdir.mkdir(parents=True, exist_ok=True)
      for _ in range(50):
        if self._create():
          return self
        holder = _read(self.path)
        if holder is None:  # released between our two looks
          continue
        if not _stale(self.path, holder):
          if holder:
            raise WorkdirBusy(self.workdir, holder)
          time.sleep(0.1)  # its writer is between open and write
          continue
        self._take_over(holder)
    except OSError as e:
      raise _os_error(self.workdir, e) from None
    raise WorkdirBusy(self.workdir, _read(self.path) or {})

  def release(self) -> None:
    if self.held:
      self.held = False
      holder = _read(self.path)
      if holder and holder.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
          self.path.unlink()

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def check_writable(workdir: Path) -> None:
  """Fails now, before any training, if a later write (checkpoints, metrics) would fail."""
  for folder in (workdir, workdir / "checkpoints"):
    if not folder.is_dir():
      continue
    probe = folder / f".write-probe-{os.getpid()}"
    try:
      probe.write_text("")
      probe.unlink()
    except OSError as e:
      raise _os_error(folder, e) from None


def read_json_file(path: Path, what: str):
  """A JSON file of the workdir, or a one-line error saying it is damaged."""
  try:
    return json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise PerjaxError(f"{path} is damaged ({'empty' if not path.stat().st_size else e}); "
                      f"{what}") from None


def _unused_method_option(key: str, used: "set[str] | None") -> bool:
  """Whether `key` is an option of a method the run does not use (`methods.NAME.OPTION`): a
  method added to the registry since, or a default changed, does not make the run another."""
  parts = key.split(".")
  return used is not None and len(parts) > 2 and parts[0] == "methods" and parts[1] not in used


def _added_at_default(key: str, old: dict, new: dict, default: dict) -> bool:
  """Whether `key` is a setting the run's config predates, at the `default` value that keeps the
  behaviour it ran with (a field added to the framework since, such as train.schedule)."""
  return key not in old and key in new and new[key] == default.get(key)


# Settings that only place the computation (the same results on any value): a run resumes
# under another one.
PLACEMENT_KEYS = frozenset({"mesh", "train.log_every"})


def claim(workdir: Path, resolved: str, used_methods: "set[str] | None" = None) -> None:
  """Writes DIR/config.json, or checks that the run already in progress there has the same
  config, options of methods outside `used_methods` aside. Call it holding the lock."""
  path = workdir / CONFIG_FILE
  started = (workdir / METRICS_FILE).exists() or (workdir / "checkpoints").exists()
  if path.exists() and started:  # without progress, a failed start's config is just replaced
    old = read_json_file(path, "it names the config of the run in progress there; restore it "
                               "or use a new --workdir")
    new = json.loads(resolved)
    fo, fn = flatten(old), flatten(new)
    default = flatten(defaults().to_dict()) if fn.keys() - fo.keys() else {}
    diff = sorted(k for k in fo.keys() | fn.keys()
                  if fo.get(k) != fn.get(k) and k not in PLACEMENT_KEYS
                  and not _unused_method_option(k, used_methods)
                  and not _added_at_default(k, fo, fn, default))
    if diff:
      raise ConfigError(f"{workdir} holds a run of another config (differs in {diff}); "
                        "use a new --workdir")
    return
  if started and not path.exists():
    raise PerjaxError(f"{workdir} holds a run without its {CONFIG_FILE}; use a new --workdir")
  tmp = workdir / (CONFIG_FILE + ".tmp")
  tmp.write_text(resolved + "\n")
  tmp.replace(path)


def finished_metrics(workdir: Path) -> dict | None:
  """The metrics of a finished run, or None. A damaged metrics.json does not count as finished:
  the run is evaluated again from its last checkpoint (one line says so)."""
  path = workdir / METRICS_FILE
  if not path.exists():
    return None
  try:
    metrics = json.loads(path.read_text())
    if isinstance(metrics, dict) and metrics:
      return metrics
  except (json.JSONDecodeError, UnicodeDecodeError):
    pass
  print(f"{path} is damaged; evaluating the run again", file=sys.stderr)
  path.unlink()
  return None


def live_holder(workdir: Path) -> dict | None:
  """The live process holding `workdir`'s lock, or None when it is free (or its lock stale)."""
  path = Path(workdir) / LOCK_FILE
  holder = _read(path)
  if holder is None or _stale(path, holder):
    return None
  return holder


def shared_runs(keys, folder_of, run, *, poll_s: float = 2.0) -> None:
  """Calls `run(key)` for every key, skipping at first those whose folder another live process
  holds; those are retried after the rest until their holder lets go (having finished the run,
  which `run` then just reads, or having died, so that `run` resumes it)."""
  pending, announced = list(keys), set()
  while pending:
    held = []
    for key in pending:
      holder = live_holder(folder_of(key))
      if holder is None:
        try:
          run(key)
          continue
        except WorkdirBusy as e:  # taken between the look and the run
          holder = e.holder
      held.append(key)
      if key not in announced:
        announced.add(key)
        print(f"{folder_of(key)}: run by pid {holder.get('pid', '?')} on "
              f"{holder.get('host', '?')}; waiting for it after the other runs", file=sys.stderr)
    pending = held
    if pending:
      time.sleep(poll_s)
