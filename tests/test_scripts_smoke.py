"""Every runnable script under experiments/bench/ and experiments/movielens/ runs at its smallest
size (`--tiny`, `TINY=1`: tiny-llama or toy shapes) from the repository root, and prints what
docs/benchmarks.md and docs/results.md read from it. Scripts that compare against the PyTorch
reference skip without $PERJAX_REF_PYTHON; the MovieLens analyses skip without the data."""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
BENCH, MOVIELENS = "experiments/bench", "experiments/movielens"


@pytest.fixture(scope="module")
def compile_cache(request, tmp_path_factory):
  """One persistent XLA cache for the scripts' subprocesses: they build the same tiny-llama,
  so each program after the first is read instead of compiled."""
  cache = getattr(request.config, "cache", None)
  return str(cache.mkdir("jax-compilation-cache") if cache else tmp_path_factory.mktemp("jax"))


def run(command, cache: str, *, env=None, timeout=300, python=sys.executable) -> str:
  """The stdout of `command` (a script and its arguments, or `bash SCRIPT`) run from the
  repository root with this checkout's perjax first on the path."""
  full_env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT), **(env or {})}
  if cache:  # every program, however quick to compile, and however small
    full_env.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  argv = command if command[0] == "bash" else [python, *command]
  out = subprocess.run(argv, cwd=ROOT, env=full_env, capture_output=True, text=True,
                       timeout=timeout)
  assert out.returncode == 0, f"{' '.join(argv)} failed:\n{out.stderr[-3000:]}"
  return out.stdout


def json_lines(text: str) -> list[dict]:
  return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def op_counts(text: str) -> dict[str, int]:
  """The `[(op, count), ...]` line the compiled_ops scripts print."""
  counts = dict(ast.literal_eval(text.strip().splitlines()[-1]))
  assert all(isinstance(n, int) and n > 0 for n in counts.values()), counts
  return counts


def test_compiled_ops_train(compile_cache):
  counts = op_counts(run([f"{BENCH}/compiled_ops_train.py"], compile_cache))
  assert counts["dot"] > 0 and counts["parameter"] > 0


def test_compiled_ops_generate(compile_cache):
  counts = op_counts(run([f"{BENCH}/compiled_ops_generate.py"], compile_cache))
  # the decoding program, not set-up code: products, and writes into the KV cache
  assert counts["dot"] > 0 and counts["dynamic-update-slice"] > 0


def test_cpu_kernels(compile_cache):
  if not _kernels_run():
    pytest.skip("the CPU kernels do not run here (AVX512-BF16 and g++ are needed)")
  out = run([f"{BENCH}/cpu_kernels.py", "--tiny"], compile_cache)
  rows = [line for line in out.splitlines() if re.fullmatch(r"\| .+ \| [0-9.]+x \|", line)]
  assert [r.split(" |")[0] for r in rows] == [
      "| q/k/v fused [576, 960]", "| o [576, 576]", "| gate/up fused [576, 3072]",
      "| down [1536, 576]", "| decoding step, 16 rows, 160 cached slots",
      "| prefill, 16 rows x 128 tokens, causal"]


def _kernels_run() -> bool:
  probe = subprocess.run([sys.executable, "-c", "from perjax.kernels import cpu_library; "
                          "print(cpu_library.kernels_available())"], cwd=ROOT, text=True,
                         capture_output=True, env={**os.environ, "JAX_PLATFORMS": "cpu",
                                                   "PYTHONPATH": str(ROOT)})
  return probe.stdout.strip().endswith("True")


def test_fused_step_ab(compile_cache):
  out = run([f"{BENCH}/fused_step_ab.py", "1", "--tiny"], compile_cache)
  losses = dict(re.findall(r"^(separate|fused): compiled, loss ([0-9.]+)$", out, re.M))
  # the same step with the projections fused: the same loss up to bfloat16 rounding
  assert float(losses["fused"]) == pytest.approx(float(losses["separate"]), abs=0.02)
  assert re.search(r"^call 0: separate [0-9.]+ s, fused [0-9.]+ s$", out, re.M)
  assert re.findall(r"^(separate|fused): median [0-9.]+ s, [0-9.]+ tokens/s$", out, re.M) == [
      "separate", "fused"]


@pytest.mark.parametrize("part", ["base", "noattn", "nonorm", "norope"])
def test_generate_parts_whole_call(part, compile_cache):
  out = run([f"{BENCH}/generate_parts.py", part, "--tiny"], compile_cache)
  assert re.findall(rf"^{part}, (\d+) new tokens: [0-9.]+ s$", out, re.M) == ["1", "4"]


def test_generate_parts_matmuls(compile_cache):
  out = run([f"{BENCH}/generate_parts.py", "matmuls", "--tiny"], compile_cache)
  assert re.findall(r"^(\d+) rows: [0-9.]+ ms, \d+ GFLOP/s$", out, re.M) == ["16", "2048"]


def test_generate_parts_refuses_an_unknown_part(compile_cache):
  with pytest.raises(AssertionError, match="unknown part 'nomlp'"):
    run([f"{BENCH}/generate_parts.py", "nomlp", "--tiny"], compile_cache)


def test_generate_split(compile_cache):
  out = run([f"{BENCH}/generate_split.py", "--tiny"], compile_cache)
  assert re.findall(r"^(\d+) new tokens: [0-9.]+ s$", out, re.M) == ["1", "2", "4"]


def test_matmul_peak_jax(compile_cache):
  lines = json_lines(run([f"{BENCH}/matmul_peak.py", "--backend", "jax", "--tiny"],
                         compile_cache))
  products = [(l["shape"], l["dtype"]) for l in lines if "gflop_per_s" in l]
  assert len(products) == 4 and {d for _, d in products} == {"float32", "bfloat16"}
  assert all(l["backend"] == "jax" for l in lines) and lines[-1]["read_gb_per_s"] > 0


def test_op_profile(compile_cache):
  for bench in ("train", "generate"):
    out = run([f"{BENCH}/op_profile.py", bench, "--tiny"], compile_cache)
    assert re.search(r"^wall time of the traced call: [0-9.]+ s; ops' summed time: [0-9.]+ s$",
                     out, re.M), out
    assert "| op kind | output | product | calls | time (s) | share |" in out
    table = [l for l in out.splitlines() if l.startswith("| ") and l.endswith("% |")]
    assert table and (bench == "generate" or any("| yes |" in l for l in table))


def test_train_memory(compile_cache):
  lines = json_lines(run([f"{BENCH}/train_memory.py", "--tiny", "--users", "2", "--batch", "1",
                          "--seq", "16", "--chunk", "8"], compile_cache))
  assert [(l["remat"], l["loss_chunk"]) for l in lines] == [(False, 0), (False, 8), (True, 0),
                                                           (True, 8)]
  assert all(l["tokens"] == 32 for l in lines)
  plain, remat = lines[0]["temp_mb"], lines[2]["temp_mb"]
  assert remat <= plain  # recomputing the layers never needs more scratch


def test_train_parts(compile_cache):
  out = run([f"{BENCH}/train_parts.py", "--tiny"], compile_cache)
  parts = re.findall(r"^(.+): [0-9.]+ s, \d+ GFLOP/s$", out, re.M)
  assert parts == ["forward projections", "backward projections (to the activations)",
                   "LM head forward", "LM head backward (to the activations)",
                   "attention's batched products, forward and backward"]
  assert re.search(r"^all products of one step: [0-9.]+ s, i.e. at most \d+ tokens/s$", out, re.M)


@pytest.mark.slow  # a dozen perjax commands, each compiling its own program
def test_gpu_checks_tiny_dry_run(tmp_path, compile_cache):
  # the GPU script's every command at toy sizes on the CPU: each prints one JSON result
  run(["bash", f"{BENCH}/gpu_checks.sh"], compile_cache, timeout=1800,
      env={"TINY": "1", "PYTHON": sys.executable, "OUT": str(tmp_path)})
  lines = json_lines((tmp_path / "gpu_checks.jsonl").read_text())
  assert len(lines) == 12 and not [l for l in lines if "failed" in l], lines


# -- against the PyTorch reference: its venv, the reference script and the SmolLM2 GGUF

def _reference() -> dict:
  """The environment the reference scripts read, or a skip that says what is missing."""
  from perjax.models import zoo
  from reference_env import reference_python
  ref = reference_python()
  baseline = Path(os.environ.get("BASELINE", SHARED_DATA.parent / "bench" / "hf_peft_baseline.py"))
  if not baseline.is_file():
    pytest.skip(f"no reference script at {baseline} (set BASELINE)")
  if not zoo.is_cached("smollm2-135m-instruct"):
    pytest.skip("the SmolLM2-135M GGUF is not in the model cache (perjax models fetch)")
  gguf = zoo.fetch("smollm2-135m-instruct", progress=False)
  return {"REF_PYTHON": ref, "BASELINE": str(baseline), "GGUF": str(gguf)}


def test_matmul_peak_torch():
  env = _reference()
  lines = json_lines(run([f"{BENCH}/matmul_peak.py", "--backend", "torch", "--tiny"], "",
                         env=env, python=env["REF_PYTHON"]))
  assert len(lines) == 5 and all(l["backend"] == "torch" for l in lines)


@pytest.mark.slow
@pytest.mark.parametrize("script, commands", [("ratios_cpu.sh", 6), ("compare_cpu.sh", 15)])
def test_alternating_comparisons(script, commands, compile_cache):
  env = {**_reference(), "TINY": "1", "PYTHON": sys.executable}
  out = run(["bash", f"{BENCH}/{script}"], compile_cache, env=env, timeout=900).splitlines()
  ran = [i for i, line in enumerate(out) if line.startswith("## ")]
  assert len(ran) == commands
  results = [json.loads(out[i + 1]) for i in ran]  # each command's one JSON line
  assert all(r for r in results)


# -- the MovieLens analyses (docs/results.md), on the shared data

@pytest.fixture
def movielens():
  if not (SHARED_DATA / "movielens" / "ratings.csv").is_file():
    pytest.skip(f"MovieLens not found at {SHARED_DATA} (set PERJAX_DATA)")
  return {"PERJAX_DATA": str(SHARED_DATA)}


def test_cf_ceiling_gives_the_recorded_figures(movielens):
  out = run([f"{MOVIELENS}/cf_ceiling.py"], "", env=movielens)
  # docs/results.md: the estimate against the user mean on the 500 scored test examples
  assert "| test, scored 500 | task pool | 500 | 0.6880 | 0.6760 | 0.6360 | 0.004 |" in out
  assert "The estimate read as 0.687 + 0.814 x estimate (fitted on train), rounded:" in out


def test_estimate_bins(movielens, tmp_path):
  runs = []
  for seed in (0, 1):
    run_dir = tmp_path / f"schedule=cosine,seed={seed}"
    run_dir.mkdir()
    rows = [{"prompt": f"... Estimate from these: {estimate}.", "target": gold,
             "prediction": answer, "label_probs": {"3": 0.2, "4": 0.5, "5": 0.3}}
            for estimate, gold, answer in (("3.1", "3", "3"), ("3.6", "4", "4"),
                                           ("4.0", "5", "4"), ("4.8", "5", "5"))]
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs.append(str(run_dir))
  out = run([f"{MOVIELENS}/estimate_bins.py", *runs], "", env=movielens)
  assert out.startswith("fitted reading: 0.687 + 0.814 x estimate; 2 run(s) pooled")
  bins = re.findall(r"^\| ([^|]+) \| 1 \| ([0-9.]+) \| 4.10 \| ", out, re.M)
  assert bins == [("< 3.25", "3.00"), ("3.25-3.75", "4.00"), ("3.75-4.25", "5.00"),
                  (">= 4.7", "5.00")]
  assert re.search(r"^\| all \| 4 \| \| \| 0.250 \| [0-9.]+ \| \|$", out, re.M)
