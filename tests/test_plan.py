"""`perjax plan`: per-device bytes from abstract shapes on fake CPU devices."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perjax.cli import main

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024 ** 3


def plan(*args) -> dict:
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  env.pop("XLA_FLAGS", None)
  done = subprocess.run([sys.executable, "-m", "perjax", "plan", *args, "--json"], env=env,
                        capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_plan_counts_the_shards_of_smollm2():
  out = plan("--model", "smollm2-135m-instruct", "--users", "4", "--batch", "4", "--seq", "32",
             "--mesh", "fsdp=4", "--device-memory", "64MiB")
  # SmolLM2-135M's published shape (HuggingFaceTB): tied embeddings, bfloat16 here
  v, d, f, layers, q, kv, rank, users = 49152, 576, 1536, 30, 9 * 64, 3 * 64, 8, 4
  params = v * d + layers * (2 * d + d * (q + 2 * kv) + q * d + 3 * d * f) + d
  assert out["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1, "groups": 1}
  assert out["params_bytes"] == params * 2 // 4  # every leaf has d = 576 on fsdp
  assert out["opt_bytes"] == 0
  # LoRA A [d, r] and B [r, out] on q and v, float32, with AdamW's two moments (replicated:
  # groups=1); plus the per-user step counts
  lora = users * layers * (d * rank + rank * q + d * rank + rank * kv) * 4
  assert 3 * lora <= out["personal_bytes"] <= 3 * lora + 1024
  assert out["activation_bytes"] > 0 and out["activation_source"].startswith("compiled")
  parts = ("params_bytes", "opt_bytes", "personal_bytes", "activation_bytes")
  assert out["per_device_bytes"] == sum(out[k] for k in parts)
  assert out["fits"] is False  # 64 MiB is too little
  assert out["suggested_fsdp"] is None or out["suggested_fsdp"] > 4


def test_plan_llama_8b_lora_fits_16gib_at_fsdp_8_only():
  common = ("--model", "llama-3.1-8b", "--method", "lora", "--users", "64", "--batch", "8",
            "--seq", "2048", "--dtype", "bfloat16")
  one, eight = plan(*common, "--mesh", "fsdp=1"), plan(*common, "--mesh", "fsdp=8")
  assert one["per_device_bytes"] > 16 * GIB and not one["fits"]
  assert eight["per_device_bytes"] <= 16 * GIB and eight["fits"]
  assert eight["params_bytes"] * 8 == one["params_bytes"]


@pytest.mark.parametrize("args,message", [
    (["--mesh", "fsdp=x"], "the size of 'fsdp' must be an integer"),
    (["--mesh", "pipeline=2"], "unknown axis 'pipeline'"),
    (["--method", "dpo"], "--method 'dpo': plan sizes a step of personal parameters"),
    (["--device-memory", "lots"], "--device-memory 'lots' is not a size"),
])
def test_bad_plan_arguments_are_one_line(capsys, args, message):
  assert main(["plan", *args]) == 2
  err = capsys.readouterr().err
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1
  assert message in err
