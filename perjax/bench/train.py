"""`perjax bench train`: multi-user LoRA training throughput.

The same total work as `hf_peft_baseline.py --what lora` (U users x S steps x B x L random
tokens, fresh rank-R LoRA on q and v per user, AdamW lr 1e-4), but all users train together:
each step is one compiled call on a [U*B, L] batch whose rows carry their user's group id.
`--mesh` shards the step (the base over fsdp/tensor); `--train-base` trains the base too.
"""
import math
import time

import jax
import numpy as np

from perjax import sharding
from perjax.bench.lora_training import lora_training, random_ids, token_rows
from perjax.errors import ConfigError
from perjax.training.across_processes import AcrossProcesses
from perjax.training.objectives import lm_loss
from perjax.training.step import make_train_step


def bench_train(model_name: str, *, users: int, steps: int, batch: int, seq: int, rank: int,
                devices: int = 1, dtype: str = "float32", random_weights: bool = False,
                seed: int = 0, peak_tflops: float = 0.0, unroll_layers: bool = False,
                remat: bool = False, loss_chunk: int = 0,
                attention: str = "default", mesh: str = "", train_base: bool = False) -> dict:
  """`mesh` (a `sharding.parse_mesh` spec, on the first that many devices) shards the step;
  `devices=N` without it is the mesh `data=N/g,groups=g`, g = gcd(N, users), the adapter table
  split over as many devices as divide the users. `train_base` trains the base as well (full
  fine-tuning: its AdamW state is sharded like it)."""
  spec = _mesh_spec(mesh, devices, users) if jax.process_count() == 1 and (
      mesh or devices > 1) else ""
  device_mesh = sharding.make_mesh(spec, devices=sharding.mesh_devices(spec)[1]) if spec else None
  # on a mesh the base is made straight into its shards: it never exists whole on one device
  leaf_sharding = None if device_mesh is None else \
      lambda path, shape: sharding.leaf_sharding(path, shape, device_mesh)
  model, graphdef, state, personal_tx, base_tx = lora_training(
      model_name, users, rank, dtype=dtype, unroll_layers=unroll_layers,
      random_weights=random_weights, seed=seed, remat=remat, loss_chunk=loss_chunk,
      attention=attention, train_base=train_base, leaf_sharding=leaf_sharding)
  group_ids = np.repeat(np.arange(users, dtype=np.int32), batch)[None]  # [accum=1, U*B]
  make_batch = lambda ids: token_rows(ids, group_ids)
  step_kwargs, place, place_key = {}, lambda tree: tree, lambda key: key
  if jax.process_count() > 1:  # several processes (`--processes`): data parallel over them
    step_kwargs, place, place_key, state = _across_processes(state, make_batch, users, batch, seq)
  elif device_mesh is not None:
    step_kwargs, place, state = _sharded(state, make_batch, users, batch, seq, device_mesh)
  step = make_train_step(graphdef, personal_tx, base_tx, lm_loss, users, **step_kwargs)

  rng = np.random.default_rng(seed)
  times, loss = [], None
  for s in range(steps):
    batch_arrays = place(make_batch(random_ids(rng, (1, users * batch, seq),
                                               model.config.vocab_size)))
    start = time.perf_counter()
    state, metrics = step(state, batch_arrays, place_key(jax.random.key(s)))
    loss = float(metrics["loss"])  # blocks until the step is done
    times.append(time.perf_counter() - start)
  steady = np.median(times[1:]) if steps > 1 else times[0]
  tokens_per_step = users * batch * seq
  tokens_per_s = tokens_per_step / steady
  flops_per_token = training_flops_per_token(model.config, seq, train_base=train_base)
  result = {"what": "lora", "model": model_name, "users": users, "steps": steps, "batch": batch,
            "seq": seq, "rank": rank, "devices": math.prod(_mesh_of(state).values()),
            "dtype": dtype, "mesh": _mesh_of(state), "train_base": train_base,
            "base_bytes_per_device": sharding.bytes_on_device(state.base, jax.devices()[0]),
            "opt_bytes_per_device": sharding.bytes_on_device(state.opt_base, jax.devices()[0]),
            "unroll_layers": unroll_layers, "remat": remat, "loss_chunk": loss_chunk,
            "attention": attention, "processes": jax.process_count(),
            "process": jax.process_index(),
            "random_weights": random_weights, "tokens_per_s": tokens_per_s,
            "compile_s": max(times[0] - steady, 0.0), "loss": loss,
            "backend": jax.default_backend(),
            "tflops_per_s": tokens_per_s * flops_per_token / 1e12}
  if peak_tflops:
    result["mfu"] = result["tflops_per_s"] / peak_tflops
  return result


def _mesh_spec(mesh: str, devices: int, users: int) -> str:
  """The mesh: `mesh`, or for `--devices N` the adapter table on `groups` (as many
  devices as divide the users) and the batch rows on `data` (the rest)."""
  if mesh and devices > 1:
    raise ConfigError(f"--devices {devices} and --mesh {mesh!r} do not go together "
                      "(--devices N is the mesh data=N/g,groups=g)")
  if not mesh:
    groups = math.gcd(devices, users)
    mesh = f"data={devices // groups},groups={groups}"
  return mesh


def _sharded(state, make_batch, users, batch, seq, mesh):
  """The step compiled for `mesh`, and the state and batches placed on it."""
  example = make_batch(np.zeros((1, users * batch, seq), np.int32))
  in_sh, out_sh = sharding.step_shardings(state, example, mesh)
  state = sharding.place(state, in_sh[0])
  place = lambda tree: sharding.place(tree, in_sh[1])
  return dict(in_shardings=in_sh, out_shardings=out_sh), place, state


def _mesh_of(state) -> dict:
  """{axis: size} of the mesh the base lives on ({} when it is not on a mesh)."""
  leaf = jax.tree.leaves(state.base)[0]
  mesh = getattr(leaf.sharding, "mesh", None)
  return dict(mesh.shape) if mesh is not None and not getattr(mesh, "empty", False) else {}


def _across_processes(state, make_batch, users, batch, seq):
  """Data parallel over every process's devices: the state replicated, each process building
  only its slice of each batch's rows (`training.across_processes`)."""
  spread = AcrossProcesses(state, make_batch(np.zeros((1, users * batch, seq), np.int32)))
  return spread.step_kwargs(), spread.batch, spread.key, spread.state(state)


def training_flops_per_token(c, seq: int, *, train_base: bool = False) -> float:
  """Matmul FLOPs per trained token with a frozen base: forward (2N) plus the backward pass
  to the activations (2N); no weight gradients for the base (a trained base adds 2N). Causal attention scores and
  values add 2 * L * seq * d forward and twice that backward: 6 * L * seq * d."""
  per_layer = c.hidden_size * (c.num_heads + 2 * c.num_kv_heads) * c.head_dim \
      + c.num_heads * c.head_dim * c.hidden_size + 3 * c.hidden_size * c.intermediate_size
  n = c.num_layers * per_layer + c.vocab_size * c.hidden_size  # the LM head is a matmul too
  return (6 if train_base else 4) * n + 6 * c.num_layers * seq * c.num_heads * c.head_dim
