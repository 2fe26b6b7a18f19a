"""`perjax export` against transformers + peft on the real SmolLM2 (tests/reference/
export_parity.py): the peft adapter on transformers' model from the same GGUF reproduces the
run's greedy answers, and the merged folder's logits match perjax's personalized logits.

Needs the reference Python (tests/reference_env.py); skipped without it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perjax.cli import main
from reference_env import reference_python

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "reference" / "export_parity.py"


@pytest.mark.real_model
def test_peft_and_merged_exports_reproduce_perjax(tmp_path):
  ref = reference_python()
  from perjax.models import zoo
  gguf = zoo.fetch("smollm2-135m-instruct", progress=False)
  run = tmp_path / "run"
  assert main(["run", str(ROOT / "experiments" / "quickstart.py") +
               ":smoke,method=lora,granularity=user", "--workdir", str(run)]) == 0
  user = json.loads((run / "predictions.jsonl").read_text().splitlines()[0])["user_id"]
  for fmt in ("peft", "merged"):
    assert main(["export", str(run), "--user", user, "--format", fmt,
                 "--out", str(tmp_path / fmt)]) == 0
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  subprocess.run([sys.executable, str(SCRIPT), "perjax", "--run", str(run), "--user", user,
                  "--out", str(tmp_path / "logits.npz")], check=True, env=env)
  out = subprocess.run([ref, str(SCRIPT), "reference", "--run", str(run), "--user", user,
                        "--logits", str(tmp_path / "logits.npz"), "--peft", str(tmp_path / "peft"),
                        "--merged", str(tmp_path / "merged"), "--gguf", str(gguf)],
                       check=True, capture_output=True, text=True).stdout
  result = json.loads(out.strip().splitlines()[-1])
  assert result["rows"] >= 5
  assert result["identical_greedy"] >= result["rows"] - 1, result["answers"]
  assert result["merged_max_rel_logit_diff"] < 1e-4
  assert result["peft_max_rel_logit_diff"] < 1e-4
