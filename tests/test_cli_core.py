"""CLI: list, generate and bench on tiny models; one-line errors for bad input."""
import json
import os
import subprocess
import sys

import pytest

from perjax.cli import main
from perjax.kernels import cpu_library


def _run(capsys, *argv):
  code = main(list(argv))
  out, err = capsys.readouterr()
  return code, out, err


def test_generate_prints_a_continuation(capsys):
  code, out, _ = _run(capsys, "generate", "--model", "tiny-llama", "--prompt", "hello",
                      "--max-new-tokens", "4")
  assert code == 0 and out.endswith("\n")


@pytest.mark.parametrize("argv, problem", [
    (["generate", "--model", "smollm3-135m", "--prompt", "x"], "unknown model 'smollm3-135m'"),
    (["generate", "--model", "tiny-llama", "--prompt", "x", "--top-p", "2"], "top_p must be in (0, 1]"),
    (["bench", "generate", "--model", "tiny-llama", "--batch", "0"], "--batch must be >= 1"),
    (["list", "--technique", "prompt"], "unknown technique 'prompt'"),
])
def test_bad_input_is_one_line_error(capsys, argv, problem):
  code, _, err = _run(capsys, *argv)
  assert code == 2
  assert problem in err and len(err.strip().splitlines()) == 1


def test_bench_generate_json_with_mixed_adapters(capsys):
  code, out, _ = _run(capsys, "bench", "generate", "--model", "tiny-llama", "--batch", "3",
                      "--prompt-len", "11", "--new-tokens", "5", "--adapters", "3", "--rank", "2",
                      "--json")
  result = json.loads(out)
  assert code == 0 and result["adapters"] == 3 and result["tokens_per_s"] > 0
  assert result["compile_s"] >= 0 and result["new_tokens"] == 5
  assert result["cpu_kernels"] == cpu_library.kernels_available()  # bfloat16 by default


def test_bench_train_json(capsys):
  code, out, _ = _run(capsys, "bench", "train", "--model", "tiny-llama", "--users", "3",
                      "--steps", "2", "--batch", "2", "--seq", "13", "--rank", "2", "--json")
  result = json.loads(out)
  assert code == 0 and result["users"] == 3 and result["loss"] > 0 and result["tokens_per_s"] > 0
  assert result["dtype"] == "float32" and not result["unroll_layers"]


def test_bench_train_unrolled_bfloat16_gives_a_close_loss(capsys):
  args = ("bench", "train", "--model", "tiny-llama", "--users", "3", "--steps", "2", "--batch",
          "2", "--seq", "13", "--rank", "2", "--json")
  _, out, _ = _run(capsys, *args)
  code, fast, _ = _run(capsys, *args, "--dtype", "bfloat16", "--unroll-layers")
  base, fast = json.loads(out), json.loads(fast)
  assert code == 0 and fast["dtype"] == "bfloat16" and fast["unroll_layers"]
  assert abs(fast["loss"] - base["loss"]) < 0.02 * base["loss"]


def test_bench_train_loss_is_the_same_on_8_fake_devices():
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  losses = []
  for devices in ("1", "8"):
    out = subprocess.run(
        [sys.executable, "-m", "perjax", "bench", "train", "--model", "tiny-llama", "--users",
         "8", "--steps", "2", "--batch", "1", "--seq", "16", "--rank", "2", "--devices", devices,
         "--json"], env=env, capture_output=True, text=True, check=True, timeout=300).stdout
    losses.append(json.loads(out.strip().splitlines()[-1])["loss"])
  assert abs(losses[0] - losses[1]) < 1e-5
