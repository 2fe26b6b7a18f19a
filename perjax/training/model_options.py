"""The model's training-time options, checked and set in one place for the runner and the
benches: activation rematerialisation, the chunked LM loss, and the attention kernel."""
import jax
import numpy as np

from perjax.errors import ConfigError
from perjax.models.llama import ATTENTION_KERNELS
from perjax.registry import suggest


def check_attention(kernel: str, dtype: str, field: str = "attention") -> None:
  """A ConfigError naming the problem when `kernel` cannot run here in `dtype`."""
  if kernel not in ATTENTION_KERNELS:
    raise ConfigError(f"{field}: unknown attention kernel {kernel!r}"
                      f"{suggest(kernel, ATTENTION_KERNELS)}")
  if kernel != "cudnn":
    return
  if dtype not in ("bfloat16", "float16"):
    raise ConfigError(f"{field}: cudnn attention runs in bfloat16 or float16, not {dtype} "
                      "(set the dtype to bfloat16, or use 'xla')")
  if jax.default_backend() != "gpu":
    raise ConfigError(f"{field}: cudnn attention needs an NVIDIA GPU, and JAX runs on "
                      f"{jax.default_backend()} here (use 'xla' or 'default')")


def set_training_options(model, *, remat: bool = False, loss_chunk: int = 0,
                         attention: str = "default") -> None:
  """Sets the options on a built model, before it is split for the compiled step (the graphdef
  carries them into it)."""
  if loss_chunk < 0:
    raise ConfigError(f"loss_chunk must be >= 0 (0: off), got {loss_chunk}")
  check_attention(attention, np.dtype(model.dtype).name)
  model.remat_layers, model.loss_chunk, model.attention = bool(remat), int(loss_chunk), attention
