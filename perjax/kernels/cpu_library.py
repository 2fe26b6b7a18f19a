"""perjax's CPU kernels (the `*.cc` files beside this one) as XLA FFI targets.

They are compiled together on first use with the system's C++ compiler (`$CXX`, else `g++`)
into `$PERJAX_CACHE/kernels` and registered with XLA. Where that is impossible (no compiler, no
AVX512-BF16, not the CPU backend, several devices) the callers run XLA's own code instead;
`PERJAX_CPU_KERNELS=0` switches the kernels off.
"""
import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jax

from perjax.errors import ConfigError

_SOURCES = sorted(Path(__file__).parent.glob("*.cc"))
# FFI target name -> the handler symbol its source defines
TARGETS = {"perjax_rows_matmul": "PerjaxRowsMatmul",
           "perjax_cache_attention": "PerjaxCacheAttention"}
_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-mavx512f", "-mavx512bw", "-mavx512vl",
          "-mavx512bf16"]


def kernels_available() -> bool:
  """Whether the kernels run in this process (asked when a program traces)."""
  return jax.default_backend() == "cpu" and jax.device_count() == 1 and _registered()


@functools.cache
def _registered() -> bool:
  switch = os.environ.get("PERJAX_CPU_KERNELS", "1")
  if switch not in ("0", "1"):
    raise ConfigError(f"PERJAX_CPU_KERNELS must be 0 (XLA's code only) or 1, not {switch!r}")
  if switch == "0" or not cpu_has_avx512_bf16():
    return False
  try:
    library = ctypes.cdll.LoadLibrary(str(_build()))
  except (OSError, subprocess.CalledProcessError) as e:
    lines = (getattr(e, "stderr", "") or str(e)).strip().splitlines()
    detail = next((line for line in lines if "error" in line), lines[-1] if lines else repr(e))
    print(f"perjax: the CPU kernels could not be built, XLA's own code runs instead "
          f"({detail.strip()})", file=sys.stderr)
    return False
  for target, symbol in TARGETS.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                platform="cpu")
  return True


def cpu_has_avx512_bf16() -> bool:
  try:
    return "avx512_bf16" in Path("/proc/cpuinfo").read_text()
  except OSError:  # not Linux: no way to tell, so no kernels
    return False


def _build() -> Path:
  """The compiled library, from the cache or built now (atomically: a half-written library is
  never loaded by another process)."""
  from perjax.models.zoo import cache_dir
  compiler = os.environ.get("CXX") or shutil.which("g++") or "g++"
  key = hashlib.sha256(b"".join(p.read_bytes() for p in _SOURCES) + " ".join(
      [compiler, *_FLAGS, jax.__version__]).encode()).hexdigest()
  target = cache_dir() / "kernels" / f"perjax_cpu-{key[:16]}.so"
  if target.exists():
    return target
  target.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
    built = Path(tmp) / target.name
    subprocess.run([compiler, *_FLAGS, f"-I{jax.ffi.include_dir()}", *map(str, _SOURCES), "-o",
                    str(built)], check=True, capture_output=True, text=True)
    os.replace(built, target)
  return target
