"""`perjax plan`: per-device bytes of a training step for a model, a method and a mesh, from
abstract shapes on fake CPU devices (see perjax/plan.py)."""
import os
import subprocess
import sys

_CHILD = "PERJAX_PLAN_DEVICES"  # set in the process that runs the plan on its fake devices


def register(subparsers):
  p = subparsers.add_parser("plan", help="per-device memory of a training step (no weights)")
  p.add_argument("--model", default="llama-3.1-8b", help="a known shape (perjax models list)")
  p.add_argument("--method", default="lora",
                 help="a registered method trained with the LM loss (rank --rank where it has "
                      "one), e.g. full_ft")
  p.add_argument("--users", type=int, default=64, help="rows of the personal table")
  p.add_argument("--batch", type=int, default=8, help="batch rows per step (over all devices)")
  p.add_argument("--seq", type=int, default=2048)
  p.add_argument("--rank", type=int, default=8)
  p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"],
                 help="base weights and compute; personal tables stay float32")
  p.add_argument("--mesh", default="fsdp=1", help="e.g. fsdp=8 or data=2,fsdp=4")
  p.add_argument("--device-memory", default="16GiB", help="the memory of one device")
  p.add_argument("--no-remat", dest="remat", action="store_false",
                 help="keep every layer's activations (default: recompute them backward)")
  p.add_argument("--loss-chunk", type=int, default=0,
                 help="LM loss from the hidden states in chunks of this many rows (0: whole)")
  p.add_argument("--json", action="store_true", help="print only the JSON line")
  p.set_defaults(func=_run)


def _run(args):
  import math
  from perjax import sharding
  from perjax.cli.bench import _check_positive, _print
  from perjax.errors import ConfigError
  from perjax.plan import parse_bytes
  _check_positive(users=args.users, batch=args.batch, seq=args.seq, rank=args.rank)
  if args.loss_chunk < 0:
    raise ConfigError(f"--loss-chunk must be >= 0 (0: off), got {args.loss_chunk}")
  from perjax.plan import planned_training
  planned_training(args.method, 1, args.rank)  # refuses a method plan cannot size, up front
  memory = parse_bytes(args.device_memory)
  devices = math.prod(sharding.parse_mesh_sizes(args.mesh).values())
  if os.environ.get(_CHILD) != str(devices):
    # XLA reads the fake device count when its backend starts: run the plan in a fresh process
    env = {**os.environ, _CHILD: str(devices), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} "
                        f"--xla_force_host_platform_device_count={devices}".strip()}
    return subprocess.run([sys.executable, "-m", "perjax", *args.argv], env=env).returncode
  from perjax.plan import plan
  _print(plan(args.model, args.method, users=args.users, batch=args.batch, seq=args.seq,
              dtype=args.dtype, mesh=args.mesh, device_memory=memory, rank=args.rank,
              remat=args.remat, loss_chunk=args.loss_chunk), args.json)
