"""Shared test setup: JAX on the CPU, and the location of the real data sets."""
import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

SHARED_DATA = Path(os.environ.get(
    "PERJAX_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
  if not SHARED_DATA.exists():
    pytest.skip(f"real data sets not found at {SHARED_DATA} (set PERJAX_DATA)")
  return SHARED_DATA
