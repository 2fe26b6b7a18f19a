"""perjax: a JAX research framework for personalizing large language models."""
import os

# transformers is used only for tokenizers, configs and chat templates; its note that PyTorch
# is absent is expected here and would only confuse users.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# XLA's CPU scheduler that runs several ops at once also moved the recomputation of
# rematerialised layers into the forward pass of unrolled training steps, so `remat_layers`
# saved no memory there (SmolLM2-135M, 4,096 tokens: 6.5 GB of scratch with or without it, 0.78
# GB with it under the plain scheduler; docs/benchmarks.md). perjax's steps and decoding run as
# fast under the plain one. XLA reads the flag when JAX starts a backend, so it holds when perjax
# is imported before JAX computes anything; a flag the user set is left alone.
_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
if _SCHEDULER_FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_SCHEDULER_FLAG}=false".strip()

__version__ = "0.1.0"
