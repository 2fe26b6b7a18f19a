"""`import perjax` changes no process-wide setting; the `perjax` command sets its own defaults,
leaving a value the user set alone."""
import json
import os
import subprocess
import sys

import pytest

from perjax.cli.environment import SCHEDULER_FLAG, apply_command_defaults

_MODULES = ("perjax", "perjax.cli", "perjax.experiment.runner", "perjax.experiment.sweep",
            "perjax.training.optim", "perjax.models", "perjax.generation")
_SNAPSHOT = f"""
import json, os, importlib
before = dict(os.environ)
for name in {_MODULES!r}:
  importlib.import_module(name)
after = dict(os.environ)
print(json.dumps({{k: [before.get(k), after.get(k)] for k in before.keys() | after.keys()
                   if before.get(k) != after.get(k)}}))
"""


def test_importing_perjax_leaves_the_environment_unchanged():
  # without the defaults this test process got from conftest, so that setting them would show
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "TRANSFORMERS_VERBOSITY")}
  done = subprocess.run([sys.executable, "-c", _SNAPSHOT], env=env, capture_output=True,
                        text=True, check=True)
  assert json.loads(done.stdout.strip().splitlines()[-1]) == {}


def test_the_command_defaults_keep_what_the_user_set():
  empty = {}
  apply_command_defaults(empty)
  assert empty == {"TRANSFORMERS_VERBOSITY": "error", "XLA_FLAGS": f"{SCHEDULER_FLAG}=false"}
  user = {"TRANSFORMERS_VERBOSITY": "info", "XLA_FLAGS": f"--xla_dump_to=x {SCHEDULER_FLAG}=true"}
  apply_command_defaults(user)
  assert user == {"TRANSFORMERS_VERBOSITY": "info",
                  "XLA_FLAGS": f"--xla_dump_to=x {SCHEDULER_FLAG}=true"}
  other = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  apply_command_defaults(other)
  assert other["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=8 {SCHEDULER_FLAG}=false"


def test_the_command_applies_its_defaults(monkeypatch, capsys):
  applied = []
  monkeypatch.setattr("perjax.cli.apply_command_defaults", lambda: applied.append(True))
  from perjax.cli import main
  with pytest.raises(SystemExit):
    main(["--help"])
  assert applied == [True]
