"""Decoding's products on the CPU: weights packed once, a hand-written kernel for few rows.

`pack(w)` lays a `[K, N]` weight out as `[N/16, K/2, 16, 2]` (zero padded). `packed_matmul(x,
packed, n)` multiplies `x [M, K]` with it: through `rows_matmul.cc` (AVX512-BF16, all cores)
when the rows are few and the machine can run it, else through XLA's dot on the same layout.
Both give bitwise the same float32 result as `x @ w` accumulated in float32, so which one runs
changes the speed only.

The kernel is compiled on first use with the system's C++ compiler (`$CXX`, else `g++`) into
`$PERJAX_CACHE/kernels` and registered as an XLA FFI target. Where that is impossible (no
compiler, no AVX512-BF16, not the CPU backend, several devices) XLA's dot runs instead;
`PERJAX_CPU_KERNELS=0` switches the kernel off.
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
import jax.numpy as jnp

_SOURCE = Path(__file__).with_name("rows_matmul.cc")
_TARGET = "perjax_rows_matmul"
# Up to this many rows the kernel is faster than XLA's product on the packed layout: 1.5-2.9x at
# 16-64 rows, about even at 256, slower on a prefill's 2,048 (docs/benchmarks.md).
ROW_LIMIT = 256
_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-mavx512f", "-mavx512bw", "-mavx512bf16"]


def pack(w) -> jax.Array:
  """`[K, N]` -> `[ceil(N/16), ceil(K/2), 16, 2]`, zero padded: each 16-column block's inputs
  in pairs, the order the kernel reads them."""
  K, N = w.shape
  w = jnp.pad(w, ((0, K % 2), (0, -N % 16)))
  return w.reshape(w.shape[0] // 2, 2, w.shape[1] // 16, 16).transpose(2, 0, 3, 1)


def pack_transposed(w) -> jax.Array:
  """The same packing of `w.T` for a `[N, K]` weight (the tied embedding as the LM head),
  without materialising the transpose."""
  N, K = w.shape
  w = jnp.pad(w, ((0, -N % 16), (0, K % 2)))
  return w.reshape(w.shape[0] // 16, 16, w.shape[1] // 2, 2).transpose(0, 2, 1, 3)


def packed_matmul(x, packed, n: int):
  """float32 `[M, n]` = `x [M, K]` times the packed weight of `n` output columns."""
  M, K = x.shape
  if M <= ROW_LIMIT and x.dtype == jnp.bfloat16 and packed.dtype == jnp.bfloat16 \
      and kernel_available():
    out = jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct((M, packed.shape[0] * 16), jnp.float32))(
        x, packed)
  else:
    pairs = jnp.pad(x, ((0, 0), (0, K % 2))).reshape(M, -1, 2)
    out = jax.lax.dot_general(pairs, packed.astype(x.dtype), (((1, 2), (1, 3)), ((), ())),
                              preferred_element_type=jnp.float32).reshape(M, -1)
  return out[:, :n]


def worth_packing(dtype) -> bool:
  """Whether decoding in `dtype` should pack its weights: where the kernel runs. Elsewhere (other
  dtypes and backends) the packed layout would only slow XLA's products down."""
  return jnp.dtype(dtype) == jnp.bfloat16 and kernel_available()


def kernel_available() -> bool:
  """Whether `packed_matmul` runs the kernel in this process (checked when a program traces)."""
  return (jax.default_backend() == "cpu" and jax.device_count() == 1 and _registered())


@functools.cache
def _registered() -> bool:
  if os.environ.get("PERJAX_CPU_KERNELS", "1") == "0" or not _cpu_has_avx512_bf16():
    return False
  try:
    library = ctypes.cdll.LoadLibrary(str(_build()))
  except (OSError, subprocess.CalledProcessError) as e:
    detail = getattr(e, "stderr", "") or str(e)
    print(f"perjax: the CPU decoding kernel could not be built, XLA's products run instead "
          f"({detail.strip().splitlines()[-1] if detail.strip() else e})", file=sys.stderr)
    return False
  jax.ffi.register_ffi_target(_TARGET, jax.ffi.pycapsule(library.PerjaxRowsMatmul),
                              platform="cpu")
  return True


def _cpu_has_avx512_bf16() -> bool:
  try:
    return "avx512_bf16" in Path("/proc/cpuinfo").read_text()
  except OSError:  # not Linux: no way to tell, so no kernel
    return False


def _build() -> Path:
  """The compiled kernel, from the cache or built now (atomically: a half-written library is
  never loaded by another process)."""
  from perjax.models.zoo import cache_dir
  compiler = os.environ.get("CXX") or shutil.which("g++") or "g++"
  include = jax.ffi.include_dir()
  key = hashlib.sha256(
      _SOURCE.read_bytes() + " ".join([compiler, *_FLAGS, jax.__version__]).encode()).hexdigest()
  target = cache_dir() / "kernels" / f"rows_matmul-{key[:16]}.so"
  if target.exists():
    return target
  target.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
    built = Path(tmp) / target.name
    subprocess.run([compiler, *_FLAGS, f"-I{include}", str(_SOURCE), "-o", str(built)],
                   check=True, capture_output=True, text=True)
    os.replace(built, target)
  return target
