"""The base sharded on a data/fsdp/tensor/groups mesh: the same losses and metrics as one
device, the bytes each device holds, resuming on another mesh, and bad meshes."""
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jax.sharding import AbstractMesh, PartitionSpec as P

from experiment_tiny import SPEC, cli_overrides, same_run_outputs
from perjax import sharding
from perjax.cli import main
from perjax.errors import ConfigError

HERE = Path(__file__).parent
DRIVER = str(HERE / "mesh_driver.py")
EIGHT = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}


def on_eight_devices(*args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, DRIVER, *args], env=EIGHT, capture_output=True,
                        text=True, timeout=900, cwd=HERE.parent)


def abstract_mesh(**sizes) -> AbstractMesh:
  full = {**dict.fromkeys(sharding.AXES, 1), **sizes}
  return AbstractMesh(tuple(full[a] for a in sharding.AXES), sharding.AXES)


# -- rules, on an abstract mesh (no devices needed) ---------------------------------------------
def test_leaf_rules_split_heads_and_mlp_on_tensor_and_d_on_fsdp():
  mesh = abstract_mesh(fsdp=4, tensor=2)
  spec = lambda path, shape: sharding.leaf_sharding(path, shape, mesh).spec
  assert spec("layers/q", (8, 48, 24)) == P(None, "fsdp", "tensor")  # L=8 divides, never split
  assert spec("layers/o", (8, 24, 48)) == P(None, "tensor", "fsdp")
  assert spec("layers/gate", (8, 48, 40)) == P(None, "fsdp", "tensor")
  assert spec("layers/down", (8, 40, 48)) == P(None, "tensor", "fsdp")
  assert spec("layers/k_bias", (8, 12)) == P(None, "tensor")
  assert spec("layers/attn_norm", (8, 48)) == P(None, "fsdp")
  assert spec("embed", (136, 48)) == P("tensor", "fsdp")
  assert spec("lm_head", (48, 136)) == P("fsdp", "tensor")
  # a field the table does not know: fsdp on its largest dividing dim, never the layer axis
  assert spec("layers/q_norm", (8, 12)) == P(None, "fsdp")
  assert spec("layers/scale", (8, 3)) == P(None, None)
  assert spec("something", (3, 20, 12)) == P(None, "fsdp", None)


def test_a_dim_that_does_not_divide_is_one_warning_and_not_split(caplog):
  mesh = abstract_mesh(fsdp=4)
  with caplog.at_level(logging.WARNING, logger="perjax.sharding"):
    for _ in range(3):
      assert sharding.leaf_sharding("layers/up", (2, 42, 40), mesh).spec == P(None, None, None)
  lines = [r.getMessage() for r in caplog.records]
  assert lines == ["base leaf 'layers/up': dim 1 (42) does not divide mesh axis 'fsdp' (4); "
                   "not split on 'fsdp'"]


def test_optimizer_moments_follow_their_parameter():
  import optax
  import jax.numpy as jnp
  mesh = abstract_mesh(fsdp=4, tensor=2)
  base = {"layers": {"q": jnp.zeros((2, 48, 24)), "down": jnp.zeros((2, 40, 48))}}
  opt = optax.adamw(1e-3).init(base)
  params, moments = sharding.base_shardings(base, mesh), sharding.base_shardings(opt, mesh)
  assert moments[0].mu["layers"]["q"].spec == params["layers"]["q"].spec == \
      P(None, "fsdp", "tensor")
  assert moments[0].nu["layers"]["down"].spec == P(None, "tensor", "fsdp")
  assert moments[0].count.spec == P()


@pytest.mark.parametrize("spec,message", [
    ("data=2,model=4", "unknown axis 'model' (axes: data, fsdp, tensor, groups)"),
    ("fsdp=two", "the size of 'fsdp' must be an integer, got 'two'"),
    ("fsdp=2,fsdp=4", "axis 'fsdp' is given twice"),
    ("fsdp", "'fsdp' is not AXIS=SIZE"),
    ("data=0", "the size of 'data' must be >= 1"),
    ("data=2,fsdp=2", "has 4 device(s) but 8 are used (on CPU: XLA_FLAGS="),
])
def test_bad_mesh_specs(spec, message):
  with pytest.raises(ConfigError) as e:
    sharding.parse_mesh(spec, 8)
  assert message in str(e.value) and "\n" not in str(e.value)


def test_parse_mesh_fills_missing_axes_with_one():
  assert sharding.parse_mesh("data=2,fsdp=4", 8) == {"data": 2, "fsdp": 4, "tensor": 1,
                                                       "groups": 1}


def one_line_error(err: str, command: str) -> str:
  assert "Traceback" not in err, err
  lines = [l for l in err.splitlines() if l.startswith(f"perjax {command}: error:")]
  assert len(lines) == 1, err
  return lines[0]


@pytest.mark.parametrize("mesh,message", [
    ("data=2,rows=4", "unknown axis 'rows'"),
    ("fsdp=8", "needs 8 devices but 1 are visible (on CPU: XLA_FLAGS="),
])
def test_bench_train_bad_mesh_is_one_line(capsys, mesh, message):
  assert main(["bench", "train", "--model", "tiny-llama", "--mesh", mesh]) == 2
  assert message in one_line_error(capsys.readouterr().err, "bench")


def test_config_mesh_that_does_not_match_the_devices_is_one_line(capsys, tmp_path):
  argv = ["run", SPEC, "--workdir", str(tmp_path / "w"),
          *cli_overrides({"method": "lora", "mesh": "data=2,fsdp=2"})]
  assert main(argv) == 2
  assert "mesh 'data=2,fsdp=2' has 4 device(s) but 1 are used" in \
      one_line_error(capsys.readouterr().err, "run")


# -- eight fake devices ------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_train_on_meshes_matches_one_device():
  meshes = ("data=1", "fsdp=8", "data=2,fsdp=4", "tensor=2")
  done = on_eight_devices("bench", *meshes)
  assert done.returncode == 0, done.stderr[-3000:]
  out = json.loads(done.stdout)
  # the tiny model's base: d=48, V=136, f=40, q 4x6, kv 2x6, 2 layers, float32, untied head
  d, v, f, q, kv, layers = 48, 136, 40, 24, 12, 2
  norms = (2 * layers * d + d) * 4
  total = (2 * v * d + layers * (d * (q + 2 * kv) + q * d + 3 * d * f)) * 4 + norms
  for train_base in (False, True):
    one = out[f"data=1/{train_base}"]
    assert one["base_bytes_per_device"] == total
    for mesh in meshes[1:]:
      r = out[f"{mesh}/{train_base}"]
      assert abs(r["loss"] - one["loss"]) <= 1e-5, (mesh, train_base, r, one)
    fsdp8 = out[f"fsdp=8/{train_base}"]
    assert fsdp8["base_bytes_per_device"] == total // 8 <= one["base_bytes_per_device"] / 6
    assert out[f"data=2,fsdp=4/{train_base}"]["base_bytes_per_device"] == total // 4
    # tensor=2 splits every leaf but the norms (which have no heads or MLP dim)
    assert out[f"tensor=2/{train_base}"]["base_bytes_per_device"] == (total - norms) // 2 + norms
    assert out[f"tensor=2/{train_base}"]["mesh"]["tensor"] == 2
  # AdamW's two moments follow their parameters; its step count (4 bytes) is replicated
  assert out["fsdp=8/True"]["opt_bytes_per_device"] == 2 * (total // 8) + 4
  assert out["fsdp=8/False"]["opt_bytes_per_device"] == 0


OUTPUTS = ("metrics.json", "predictions.jsonl")


@pytest.mark.slow
def test_run_on_a_mesh_gives_the_one_device_metrics_and_resumes_on_another(tmp_path):
  args = cli_overrides({"method": "lora", "train.steps": 4})  # checkpoints at steps 2 and 4
  run = lambda workdir, *extra: on_eight_devices("run", "run", SPEC, "--workdir", str(workdir),
                                                 *args, *extra)
  one, mesh = tmp_path / "one", tmp_path / "mesh"
  for workdir, extra in ((one, ()), (mesh, ("--config.mesh=data=2,fsdp=2,tensor=2",))):
    done = run(workdir, *extra)
    assert done.returncode == 0, done.stderr[-3000:]
  same_run_outputs(one, mesh)  # the measured wall time aside
  # interrupted after step 2: resumed on another mesh, it ends as the uninterrupted run
  for f in OUTPUTS:
    (mesh / f).unlink()
  shutil.rmtree(mesh / "checkpoints" / "4")
  done = run(mesh, "--config.mesh=data=4,fsdp=2")
  assert done.returncode == 0, done.stderr[-3000:]
  assert "2/4" in done.stderr and "0/4" not in done.stderr  # started at step 2
  same_run_outputs(one, mesh)  # the measured wall time aside


@pytest.mark.slow
def test_run_uses_every_local_device_by_default_and_gives_the_one_device_outputs(tmp_path):
  import jax
  assert jax.device_count() == 1  # this process: the one-device runs
  for batch, devices in ((8, 8), (2, 2)):  # 2 rows split over no more than 2 of the 8 devices
    args = cli_overrides({"method": "lora", "train.batch_size": batch})
    one, eight = tmp_path / f"one{batch}", tmp_path / f"eight{batch}"
    assert main(["run", SPEC, "--workdir", str(one), *args]) == 0
    done = on_eight_devices("run", "run", SPEC, "--workdir", str(eight), *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"step on {devices} devices" in done.stderr
    assert ("training on 2 of 8 devices" in done.stderr) == (devices < 8)
    same_run_outputs(one, eight)  # the measured wall time aside


@pytest.mark.slow
def test_two_processes_with_the_base_split_over_them_give_the_one_process_outputs(tmp_path):
  args = cli_overrides({"method": "lora"})
  one, two = tmp_path / "one", tmp_path / "two"
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
  env.pop("XLA_FLAGS", None)  # one device per process: fsdp=2 spans the two processes
  for workdir, extra in ((one, ()), (two, ("--processes", "2", "--config.mesh=fsdp=2"))):
    done = subprocess.run([sys.executable, "-m", "perjax", "run", SPEC, "--workdir",
                           str(workdir), *args, *extra], cwd=HERE.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
  same_run_outputs(one, two)  # the measured wall time aside
