"""`perjax bench load`: the host memory and time of loading a Hugging Face folder.

The load runs in a fresh Python process: its peak resident memory after the load (`VmHWM`)
less its resident memory before (`VmRSS`, JAX imported and its backend started) is the growth. The weights' bytes are
the checkpoint tensors' own sizes. With `--random-weights`, a known shape (optionally cut to
`layers` layers) is first written as a random folder in the stored dtype, so the figure needs no
download.
"""
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def bench_load(model: str, *, dtype: str = "bfloat16", random_weights: bool = False,
               layers: int = 0) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    folder = write_random_folder(model, Path(tmp), dtype, layers) if random_weights else model
    out = subprocess.run([sys.executable, "-m", "perjax.bench.load", str(folder), dtype],
                         capture_output=True, text=True)
    if out.returncode:
      raise RuntimeError(f"the load failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
  return {"what": "load", "model": model, "dtype": dtype, "random_weights": random_weights,
          "layers": layers or None, **result,
          "growth_over_weights": result["peak_growth_bytes"] / result["weights_bytes"]}


def write_random_folder(name: str, out: Path, dtype: str, layers: int = 0) -> Path:
  """A random checkpoint of known shape `name` in `dtype`, as transformers writes one."""
  from ml_dtypes import bfloat16
  from safetensors.numpy import save_file
  from perjax.models import families
  from perjax.models.known_configs import KNOWN_SHAPES, known_config
  config = known_config(name)
  if layers:
    config = dataclasses.replace(config, num_layers=layers, sliding_layers=config.sliding_layers[
        :layers])
  np_dtype = bfloat16 if dtype == "bfloat16" else np.float32
  rng = np.random.default_rng(0)
  out.mkdir(parents=True, exist_ok=True)
  tensors = {}
  for key, shape in _hf_shapes(config).items():  # one tensor at a time, in the stored dtype
    tensors[key] = (rng.standard_normal(shape, np.float32) * 0.02).astype(np_dtype)
  save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
  cfg = {**KNOWN_SHAPES[name], **families.hf_config(config)}
  (out / "config.json").write_text(json.dumps(cfg))
  return out


def _hf_shapes(config) -> dict[str, tuple]:
  from perjax.models import hf_layout
  from perjax.models.llama import Llama
  from flax import nnx
  abstract = nnx.eval_shape(lambda: Llama(config, rngs=nnx.Rngs(0)))
  arrays = {"embed": abstract.embed, "final_norm": abstract.final_norm,
            "lm_head": abstract.lm_head, **{f"layers/{k}": v for k, v in
                                            vars(abstract.layers).items()
                                            if isinstance(v, nnx.Variable)}}
  shapes = {}
  for part in hf_layout.top_parts(config):
    shape = arrays[part.field].shape
    shapes[part.tensor_name()] = shape[::-1] if part.transpose else shape
  for part in hf_layout.layer_parts(config):
    leaf = arrays.get(f"layers/{part.field}")
    if leaf is None:
      continue
    shape = leaf.shape[1:][::-1] if part.transpose else leaf.shape[1:]
    for i in range(config.num_layers):
      name = part.tensor_name(i)
      if part.rows:  # a block of a fused tensor: the whole tensor's rows
        prev = shapes.get(name, (0,) + shape[1:])
        shapes[name] = (prev[0] + shape[0],) + shape[1:]
      else:
        shapes[name] = shape
  return shapes


def _child(folder: str, dtype: str) -> None:
  """In the fresh process: load `folder` in `dtype` and print the figures as JSON."""
  import time
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from perjax.models import decoder_loading, hf_loader
  from perjax.models.streaming_load import SafetensorsTensors
  jnp.zeros(1).block_until_ready()  # the backend started: part of the baseline
  before = _status_bytes("VmRSS")
  start = time.perf_counter()
  model = decoder_loading.build_from_folder(hf_loader.read_config(Path(folder)), folder,
                                            dtype=dtype, param_dtype=dtype)
  jax.block_until_ready(jax.tree.leaves(nnx.state(model)))
  seconds = time.perf_counter() - start
  tensors = SafetensorsTensors(folder)
  weights = sum(int(np.prod(e[3])) * e[2].itemsize for e in tensors.entries.values())
  print(json.dumps({"weights_bytes": weights, "peak_growth_bytes": _status_bytes("VmHWM") - before,
                    "seconds": seconds}))


def _status_bytes(field: str) -> int:
  """A memory figure of this process from /proc (Linux): VmRSS now, VmHWM its peak."""
  for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith(field + ":"):
      return int(line.split()[1]) * 1024
  raise RuntimeError(f"/proc/self/status has no {field}")


if __name__ == "__main__":
  _child(*sys.argv[1:3])
