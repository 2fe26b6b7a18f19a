"""The reference environment: a separate Python with torch, transformers, peft and gguf
(never perjax's own environment), named by $PERJAX_REF_PYTHON; `.ci/run` builds one. Tests that
need it skip with the reason where it is absent, so a test run never depends on whatever
another venv on the machine holds."""
import os
import subprocess
from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


def reference_python() -> str:
  ref = os.environ.get("PERJAX_REF_PYTHON", "")
  if not ref or not Path(ref).exists():
    pytest.skip(f"no reference Python ({ref or 'PERJAX_REF_PYTHON unset'}): set "
                "PERJAX_REF_PYTHON to the python of a venv with torch, transformers, gguf, peft")
  probe = subprocess.run([ref, "-c", "import torch, transformers, gguf, peft"],
                         capture_output=True, text=True)
  if probe.returncode:
    pytest.skip(f"{ref} lacks torch/transformers/gguf/peft: "
                f"{(probe.stderr.strip().splitlines() or ['?'])[-1]}")
  return ref


def run_reference(ref: str, script: str, *args) -> str:
  """Runs tests/reference/`script` with the reference Python; its stdout. A failure shows the
  script's stderr."""
  out = subprocess.run([ref, str(REFERENCE_DIR / script), *map(str, args)],
                       capture_output=True, text=True)
  if out.returncode:
    raise AssertionError(f"{script} {' '.join(map(str, args))} failed:\n{out.stderr[-3000:]}")
  return out.stdout
