"""`perjax bench generate|train|users|retrieval`: one JSON line of figures each
(see docs/benchmarks.md)."""
import json
import sys


def register(subparsers):
  p = subparsers.add_parser("bench", help="throughput benchmarks (one JSON line)")
  sub = p.add_subparsers(dest="bench", required=True)

  g = sub.add_parser("generate", help="greedy decoding tokens/s on random prompts")
  g.add_argument("--model", default="smollm2-135m-instruct")
  g.add_argument("--batch", type=int, default=16)
  g.add_argument("--prompt-len", type=int, default=128)
  g.add_argument("--new-tokens", type=int, default=32)
  g.add_argument("--adapters", type=int, default=0, help="mix this many random LoRA adapters")
  g.add_argument("--rank", type=int, default=8)
  g.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"],
                 help="compute and weight dtype (default bfloat16: SmolLM2's published dtype)")
  g.add_argument("--random-weights", action="store_true",
                 help="the model's architecture with random weights (no download)")
  g.add_argument("--users-total", type=int, default=0,
                 help="serve users of an adapter bank of this many users (needs --bank-dir)")
  g.add_argument("--bank-dir", default=None, help="the adapter bank's folder (created if absent)")
  g.add_argument("--json", action="store_true", help="print only the JSON line")
  g.set_defaults(func=_run_generate)

  t = sub.add_parser("train", help="multi-user LoRA training tokens/s")
  t.add_argument("--model", default="smollm2-135m-instruct")
  t.add_argument("--users", type=int, default=4)
  t.add_argument("--steps", type=int, default=3)
  t.add_argument("--batch", type=int, default=4)
  t.add_argument("--seq", type=int, default=128)
  t.add_argument("--rank", type=int, default=8)
  t.add_argument("--devices", type=int, default=1,
                 help="N devices: the mesh data=N/g,groups=g with g = gcd(N, users)")
  t.add_argument("--mesh", default="",
                 help="a device mesh such as data=2,fsdp=4 (axes data, fsdp, tensor, groups) "
                      "on the first that many devices; the base is sharded over fsdp/tensor")
  t.add_argument("--train-base", action="store_true",
                 help="train the base weights too (full fine-tuning; their AdamW state is "
                      "sharded like them)")
  t.add_argument("--peak-tflops", type=float, default=0.0,
                 help="the device's peak TFLOP/s, to report MFU")
  # float32 and the layer scan by default: the loss is then bitwise the same on 1 or N devices
  # (bfloat16 rounds differently once the step is partitioned).
  t.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                 help="compute and base-weight dtype; LoRA weights and optimizer stay float32")
  t.add_argument("--unroll-layers", action="store_true",
                 help="unroll the layer loop (faster steps on CPU, longer compile) "
                      "instead of one lax.scan")
  t.add_argument("--random-weights", action="store_true",
                 help="the model's architecture with random weights (no download)")
  t.add_argument("--remat", action="store_true",
                 help="recompute each layer's activations in the backward pass")
  t.add_argument("--loss-chunk", type=int, default=0,
                 help="LM loss from the hidden states in chunks of this many rows (0: whole)")
  _attention_flag(t)
  t.add_argument("--users-total", type=int, default=0,
                 help="train users of an adapter bank of this many users (needs --bank-dir)")
  t.add_argument("--users-per-step", type=int, default=0,
                 help="with --users-total: distinct users (device slots) per step")
  t.add_argument("--bank-dir", default=None, help="the adapter bank's folder (created if absent)")
  t.add_argument("--processes", type=int, default=1,
                 help="local JAX processes joined by jax.distributed (CPU: gloo collectives)")
  t.add_argument("--json", action="store_true")
  t.set_defaults(func=_run_train)

  u = sub.add_parser("users", help="stacked multi-user training against one user after "
                                    "another: users/s and their ratio")
  u.add_argument("--model", default="smollm2-135m-instruct")
  u.add_argument("--users", type=int, default=256)
  u.add_argument("--examples", type=int, default=16, help="each user's examples (one update)")
  u.add_argument("--users-per-step", type=int, default=16,
                 help="users sharing one stacked step (divides --users)")
  u.add_argument("--seq", type=int, default=128)
  u.add_argument("--rank", type=int, default=8)
  u.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  u.add_argument("--unroll-layers", action="store_true")
  u.add_argument("--loss-chunk", type=int, default=0,
                 help="LM loss from the hidden states in chunks of this many rows (0: whole)")
  u.add_argument("--random-weights", action="store_true",
                 help="the model's architecture with random weights (no download)")
  _attention_flag(u)
  u.add_argument("--json", action="store_true")
  u.set_defaults(func=_run_users)

  r = sub.add_parser("retrieval", help="BM25 queries/s over one pool")
  r.add_argument("--items", type=int, default=10_000)
  r.add_argument("--queries", type=int, default=1_000)
  r.add_argument("--json", action="store_true")
  r.set_defaults(func=_run_retrieval)

  lo = sub.add_parser("load", help="peak host memory growth of loading a Hugging Face folder")
  lo.add_argument("--model", required=True, help="a folder, or a known shape with "
                  "--random-weights (written as a random folder first)")
  lo.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"),
                  help="the stored and loaded dtype")
  lo.add_argument("--random-weights", action="store_true")
  lo.add_argument("--layers", type=int, default=0, help="cut a known shape to this many layers")
  lo.add_argument("--json", action="store_true")
  lo.set_defaults(func=_run_load)


def _attention_flag(parser):
  parser.add_argument("--attention", default="default",
                      help="the training step's attention: perjax's own (default), or "
                           "jax.nn.dot_product_attention lowered by XLA (xla) or cuDNN (cudnn: "
                           "GPU, bfloat16); checked against models.llama.ATTENTION_KERNELS")


def _print(result: dict, as_json: bool) -> None:
  if as_json:
    print(json.dumps(result))
  else:
    for key, value in result.items():
      print(f"{key:14s} {value:.4g}" if isinstance(value, float) else f"{key:14s} {value}")


def _check_positive(**values):
  from perjax.errors import ConfigError
  for name, value in values.items():
    if value < 1:
      raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def _check_training_options(args):
  """Before any model loads: the loss chunk, and an attention kernel that can run here."""
  if args.loss_chunk < 0:
    from perjax.errors import ConfigError
    raise ConfigError(f"--loss-chunk must be >= 0 (0: off), got {args.loss_chunk}")
  from perjax.training.model_options import check_attention
  check_attention(args.attention, args.dtype, field="--attention")


def _check_bank(args) -> bool:
  """Whether the bench runs against an adapter bank (both flags, or neither)."""
  from perjax.errors import ConfigError
  if bool(args.users_total) != bool(args.bank_dir):
    raise ConfigError("--users-total and --bank-dir go together (the bank's size and folder)")
  return bool(args.bank_dir)


def _run_generate(args):
  from perjax.bench.generate import bench_generate
  _check_positive(batch=args.batch, prompt_len=args.prompt_len, new_tokens=args.new_tokens,
                  rank=args.rank)
  if _check_bank(args):
    from perjax.bench.bank import bench_generate_bank
    _check_positive(users_total=args.users_total, adapters=args.adapters)
    _print(bench_generate_bank(args.model, users_total=args.users_total, bank_dir=args.bank_dir,
                               adapters=args.adapters, batch=args.batch,
                               prompt_len=args.prompt_len, new_tokens=args.new_tokens,
                               rank=args.rank, dtype=args.dtype,
                               random_weights=args.random_weights), args.json)
    return
  _print(bench_generate(args.model, batch=args.batch, prompt_len=args.prompt_len,
                        new_tokens=args.new_tokens, adapters=args.adapters, rank=args.rank,
                        dtype=args.dtype, random_weights=args.random_weights), args.json)


def _run_train(args):
  from perjax.bench.train import bench_train
  _check_positive(users=args.users, steps=args.steps, batch=args.batch, seq=args.seq,
                  rank=args.rank, devices=args.devices, processes=args.processes)
  _check_training_options(args)
  if args.processes > 1:
    from perjax import distributed
    from perjax.errors import ConfigError
    if args.bank_dir:
      raise ConfigError("--processes and --bank-dir do not go together: the bank bench runs "
                        "in one process")
    if not distributed.in_cluster():  # the launcher: run this command as P processes
      print(distributed.launch_local(sys.argv[1:], args.processes), end="")
      return
    distributed.initialize_from_env()
  if args.mesh:
    from perjax import sharding
    from perjax.errors import ConfigError
    sharding.mesh_devices(args.mesh)  # a bad mesh is one line before any model loads
    if args.bank_dir or args.processes > 1:
      raise ConfigError("--mesh runs in one process without a bank (not with --bank-dir or "
                        "--processes)")
  if _check_bank(args):
    from perjax.bench.bank import bench_train_bank
    _check_positive(users_total=args.users_total, users_per_step=args.users_per_step)
    _print(bench_train_bank(args.model, users_total=args.users_total,
                            users_per_step=args.users_per_step, bank_dir=args.bank_dir,
                            steps=args.steps, batch=args.batch, seq=args.seq, rank=args.rank,
                            dtype=args.dtype, random_weights=args.random_weights,
                            unroll_layers=args.unroll_layers, remat=args.remat,
                            loss_chunk=args.loss_chunk, attention=args.attention), args.json)
    return
  result = bench_train(args.model, users=args.users, steps=args.steps, batch=args.batch,
                       seq=args.seq, rank=args.rank, devices=args.devices, dtype=args.dtype,
                       random_weights=args.random_weights, peak_tflops=args.peak_tflops,
                       unroll_layers=args.unroll_layers, remat=args.remat,
                       loss_chunk=args.loss_chunk, attention=args.attention, mesh=args.mesh,
                       train_base=args.train_base)
  if args.processes > 1 and result["process"] != 0:
    return  # one JSON line per run: process 0's
  _print(result, args.json)


def _run_users(args):
  from perjax.bench.users import bench_users
  _check_positive(users=args.users, examples=args.examples, users_per_step=args.users_per_step,
                  seq=args.seq, rank=args.rank)
  _check_training_options(args)
  _print(bench_users(args.model, users=args.users, examples=args.examples,
                     users_per_step=args.users_per_step, seq=args.seq, rank=args.rank,
                     dtype=args.dtype, unroll_layers=args.unroll_layers,
                     random_weights=args.random_weights, loss_chunk=args.loss_chunk,
                     attention=args.attention), args.json)


def _run_load(args):
  from perjax.bench.load import bench_load
  _print(bench_load(args.model, dtype=args.dtype, random_weights=args.random_weights,
                    layers=args.layers), args.json)


def _run_retrieval(args):
  from perjax.retrieval.bench import bench_bm25
  _check_positive(items=args.items, queries=args.queries)
  _print(bench_bm25(args.items, args.queries), args.json)
