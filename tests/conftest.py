"""Shared test setup: JAX on the CPU, and the location of the real data sets."""
import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the settings the `perjax` command runs under (perjax itself sets none when imported); the
# memory tests (test_chunked_loss) depend on its XLA scheduler flag
from perjax.cli.environment import apply_command_defaults  # noqa: E402
apply_command_defaults()

import pytest  # noqa: E402

SHARED_DATA = Path(os.environ.get(
    "PERJAX_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
  if not SHARED_DATA.exists():
    pytest.skip(f"real data sets not found at {SHARED_DATA} (set PERJAX_DATA)")
  return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
  """`tiny_checkpoint(family, gguf=False)`: the folder of a tiny random transformers checkpoint
  of that family with its reference outputs (tests/reference/tiny_families.py), made once per
  session by the reference Python; skips without one."""
  from reference_env import reference_python, run_reference
  ref = reference_python()
  root = tmp_path_factory.mktemp("families")
  made = {}

  def make(family: str, gguf: bool = False) -> Path:
    key = (family, gguf)
    if key not in made:
      folder = root / f"{family}{'-gguf' if gguf else ''}"
      run_reference(ref, "tiny_families.py", "make", family, folder, *(["--gguf"] if gguf else []))
      made[key] = folder
    return made[key]
  return make


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Drop JAX's compiled programs after each test module. Every XLA CPU executable keeps its
  machine code in memory maps of its own, and one pytest process compiles thousands: kept alive
  by the caches, they pass the kernel's map limit (vm.max_map_count, 65530) and the next
  compilation dies with a segmentation fault."""
  yield
  import gc
  import jax
  jax.clear_caches()
  gc.collect()
