"""Compute and storage dtypes by name, as configs and the command line give them."""
import jax.numpy as jnp

from perjax.errors import PerjaxError

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def parse_dtype(name):
  """A jnp dtype from its name; a dtype passes through."""
  if not isinstance(name, str):
    return name
  if name not in DTYPES:
    raise PerjaxError(f"unknown dtype {name!r}; choose one of {sorted(DTYPES)}")
  return DTYPES[name]
