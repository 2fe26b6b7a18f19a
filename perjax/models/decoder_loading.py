"""`load(name)`: a decoder and its tokenizer from the zoo, a GGUF file or a Hugging Face folder."""
import os

import jax
import jax.numpy as jnp
from flax import nnx

from perjax.errors import PerjaxError
from perjax.models import zoo
from perjax.models.dtypes import parse_dtype
from perjax.models.llama import Llama, LlamaConfig, dims, tiny_llama_config
from perjax.models.tiny_tokenizer import byte_tokenizer

TINY_PREFIX = "tiny-llama"


def read_checkpoint(name: str, progress: bool = True):
  """(config, float32 weights dict, tokenizer) for a zoo name, a .gguf file or a HF folder."""
  os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
  path = zoo.resolve(name)
  if path.is_file() and path.suffix == ".gguf":
    from gguf import GGUFReader
    from perjax.models import gguf_loader
    try:
      reader = GGUFReader(str(path))
    except Exception as e:  # a truncated or foreign file
      raise PerjaxError(f"{path} is not a readable GGUF file ({e})") from None
    config = gguf_loader.read_config(reader)
    return config, gguf_loader.read_weights(reader, config, progress), \
        gguf_loader.read_tokenizer(reader)
  if path.is_dir() and (path / "config.json").exists():
    from perjax.models import hf_loader
    config = hf_loader.read_config(path)
    return config, hf_loader.read_weights(path, config), hf_loader.read_tokenizer(path)
  raise PerjaxError(f"{path} is neither a .gguf file nor a Hugging Face model folder")


def build(config: LlamaConfig, weights: dict | None, *, personal=None,
          dtype="float32", param_dtype="float32", seed: int = 0,
          unroll_layers: bool = False) -> Llama:
  """A Llama with the given base weights (random when None) and freshly initialised personal
  modules (`personal`: a builder (dims, rngs) -> PersonalStack, see `models.personal`)."""
  dtype, param_dtype = parse_dtype(dtype), parse_dtype(param_dtype)
  make = lambda: Llama(config, personal=personal, dtype=dtype, param_dtype=param_dtype,
                       unroll_layers=unroll_layers, rngs=nnx.Rngs(seed))
  if weights is None:
    return make()
  abstract = nnx.eval_shape(make)
  graphdef, state = nnx.split(abstract)
  pure = state.to_pure_dict()
  pure["embed"] = weights["embed"]
  pure["final_norm"] = weights["final_norm"]
  if "lm_head" in pure:
    pure["lm_head"] = weights["lm_head"]
  for field in pure["layers"]:
    pure["layers"][field] = weights["layers"][field]
  if personal is not None:  # small: initialise for real, outside eval_shape
    pure["personal"] = nnx.state(personal(dims(config), nnx.Rngs(seed))).to_pure_dict()
  pure = jax.tree.map(lambda a, ref: jnp.asarray(a, ref.dtype), pure,
                      state.to_pure_dict())
  nnx.replace_by_pure_dict(state, pure)
  return nnx.merge(graphdef, state)


def load_decoder(name: str, *, personal=None, dtype="float32",
                 param_dtype="float32", seed: int = 0, progress: bool = True,
                 random_weights: bool = False, unroll_layers: bool = False):
  """(model, tokenizer). `name`: a zoo name, `tiny-llama`, a .gguf path, a HF folder or hub id.

  `random_weights=True` builds a known zoo architecture with random weights and no tokenizer
  (for throughput benchmarks where the weights cannot be fetched). `unroll_layers=True` runs
  the layers as an unrolled loop instead of a `lax.scan` (see `Llama.forward`).
  """
  build_kwargs = dict(personal=personal, dtype=dtype, param_dtype=param_dtype, seed=seed,
                      unroll_layers=unroll_layers)
  if random_weights:
    from perjax.models.known_configs import known_config
    return build(known_config(name), None, **build_kwargs), None
  if name.startswith(TINY_PREFIX):
    tokenizer = byte_tokenizer()
    config = tiny_llama_config(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                               eos_token_ids=(tokenizer.eos_token_id,),
                               pad_token_id=tokenizer.pad_token_id)
    return build(config, None, **build_kwargs), tokenizer
  config, weights, tokenizer = read_checkpoint(name, progress)
  return build(config, weights, **build_kwargs), tokenizer


def load(name: str, **kwargs):
  """Public API: `model, tokenizer = perjax.models.load("smollm2-135m-instruct")`."""
  return load_decoder(name, **kwargs)
