"""The process settings the `perjax` command runs under. `import perjax` sets none of them: they
are process-wide, and a library must not change them for every JAX user in the process.

Scripts that want the command's behaviour (benchmarks, the tests) call `apply_command_defaults()`
before JAX computes anything.
"""
import os

# XLA's CPU scheduler that runs several ops at once also moved the recomputation of
# rematerialised layers into the forward pass of unrolled training steps, so `remat_layers`
# saved no memory there (SmolLM2-135M, 4,096 tokens: 6.5 GB of scratch with or without it, 0.78
# GB with it under the plain scheduler; docs/benchmarks.md). perjax's steps and decoding run as
# fast under the plain one. XLA reads the flag when JAX starts a backend, so it must be set
# before JAX computes anything.
SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


def apply_command_defaults(environ=os.environ) -> None:
  """Set the command's defaults in `environ`; a value the user set is left alone."""
  # transformers is used only for tokenizers, configs and chat templates; its note that PyTorch
  # is absent is expected here and would only confuse users.
  environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
  flags = environ.get("XLA_FLAGS", "")
  if SCHEDULER_FLAG not in flags:
    environ["XLA_FLAGS"] = f"{flags} {SCHEDULER_FLAG}=false".strip()
