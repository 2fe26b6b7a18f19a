"""`load(name)`: a decoder and its tokenizer from the zoo, a GGUF file or a Hugging Face folder."""
import functools
import os

import jax
import jax.numpy as jnp
from flax import nnx

from perjax.errors import PerjaxError
from perjax.models import zoo
from perjax.models.dtypes import parse_dtype
from perjax.models.llama import Llama, LlamaConfig, dims, parameter_count, tiny_llama_config
from perjax.models.tiny_tokenizer import byte_tokenizer
from perjax.models.weight_bits import store_frozen_base_as_bits

TINY_PREFIX = "tiny-llama"


def read_checkpoint(name: str, progress: bool = True):
  """(config, float32 weights dict, tokenizer) for a zoo name, a .gguf file or a HF folder."""
  os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
  path = zoo.resolve(name)
  if path.is_file() and path.suffix == ".gguf":
    from perjax.models import gguf_loader
    reader = _gguf_reader(path)
    config = gguf_loader.read_config(reader)
    return config, gguf_loader.read_weights(reader, config, progress), \
        gguf_loader.read_tokenizer(reader)
  if path.is_dir() and (path / "config.json").exists():
    from perjax.models import hf_loader
    config = hf_loader.read_config(path)
    return config, hf_loader.read_weights(path, config), hf_loader.read_tokenizer(path)
  raise PerjaxError(f"{path} is neither a .gguf file nor a Hugging Face model folder")


def _gguf_reader(path):
  from gguf import GGUFReader
  try:
    return GGUFReader(str(path))
  except Exception as e:  # a truncated or foreign file
    raise PerjaxError(f"{path} is not a readable GGUF file ({e})") from None


def build(config: LlamaConfig, weights: dict | None, *, personal=None,
          dtype="float32", param_dtype="float32", seed: int = 0,
          unroll_layers: bool = False) -> Llama:
  """A Llama with the given base weights (random when None) and freshly initialised personal
  modules (`personal`: a builder (dims, rngs) -> PersonalStack, see `models.personal`)."""
  def from_weights(leaves):
    flat = {"embed": weights["embed"], "final_norm": weights["final_norm"],
            "lm_head": weights.get("lm_head"),
            **{f"layers/{k}": v for k, v in weights["layers"].items()}}
    return {path: jnp.asarray(flat[path], leaf.dtype) for path, leaf in leaves.items()}
  return assemble(config, None if weights is None else from_weights, personal=personal,
                   dtype=dtype, param_dtype=param_dtype, seed=seed, unroll_layers=unroll_layers)


def build_from_folder(config: LlamaConfig, folder, *, leaf_sharding=None, progress=False,
                      **kwargs) -> Llama:
  """`build` with the base read from a Hugging Face folder one tensor at a time, straight into
  device arrays (`streaming_load`); `leaf_sharding(path, shape)` places each leaf."""
  from perjax.models import streaming_load
  return assemble(config, lambda leaves: streaming_load.load_base(
      config, folder, leaves, leaf_sharding, progress), **kwargs)


def assemble(config, base_arrays, *, personal=None, dtype="float32", param_dtype="float32",
              seed: int = 0, unroll_layers: bool = False) -> Llama:
  """The model with `base_arrays({path: ShapeDtypeStruct}) -> {path: array}` as its base
  leaves (random when None), built abstractly first so no random base is ever made."""
  dtype, param_dtype = parse_dtype(dtype), parse_dtype(param_dtype)
  make = lambda: Llama(config, personal=personal, dtype=dtype, param_dtype=param_dtype,
                       unroll_layers=unroll_layers, rngs=nnx.Rngs(seed))
  if base_arrays is None:
    return make()
  graphdef, state = nnx.split(nnx.eval_shape(make))
  pure = state.to_pure_dict()
  leaves = {"/".join(map(str, path)): leaf for path, leaf in _flat(pure).items()
            if path[0] != "personal"}
  for path, array in base_arrays(leaves).items():
    *parents, last = path.split("/")
    node = pure
    for key in parents:
      node = node[key]
    node[last] = array
  if personal is not None:  # small: initialise for real, outside eval_shape
    pure["personal"] = nnx.state(personal(dims(config), nnx.Rngs(seed))).to_pure_dict()
  nnx.replace_by_pure_dict(state, pure)
  return nnx.merge(graphdef, state)


def _drawn_by_layer(value, shape, dtype, as_bits: bool):
  """`value(key, shape)` for a stacked `[L, ...]` leaf, drawn one layer at a time into a
  buffer of 16-bit patterns: only one layer's float32 draw exists at once, and the buffer is
  never widened (XLA's CPU backend would run a bfloat16 dynamic-update-slice in float32)."""
  def draw(key):
    write = lambda i, buf: jax.lax.dynamic_update_slice_in_dim(
        buf, jax.lax.bitcast_convert_type(value(jax.random.fold_in(key, i), shape[1:]).astype(
            dtype), jnp.uint16)[None], i, axis=0)
    bits = jax.lax.fori_loop(0, shape[0], write, jnp.zeros(shape, jnp.uint16))
    return bits if as_bits else jax.lax.bitcast_convert_type(bits, dtype)
  return draw


def random_base(config: LlamaConfig, leaves: dict, *, seed: int = 0, leaf_sharding=None,
                frozen_bits: bool = False):
  """Random base leaves for throughput benchmarks: each drawn by one compiled call in its own
  dtype and sharding, so no float32 copy of a leaf is ever made (an 8B model's largest leaf
  would be 7.5 GB of float32); stacked bfloat16 leaves one layer at a time. Matrices are N(0,
  1/fan_in), embeddings N(0, 0.02^2), norms the identity, biases zero. `frozen_bits`: bfloat16
  matrices come as their bits (`models.weight_bits`), for a frozen base on CPU."""
  default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  key = jax.random.key(seed)
  out = {}
  for i, (path, leaf) in enumerate(sorted(leaves.items())):
    sharding = leaf_sharding(path, leaf.shape) if leaf_sharding else default
    name = path.rsplit("/", 1)[-1]
    if name.endswith("norm"):
      value = lambda k, shape=leaf.shape, dt=leaf.dtype: jnp.full(shape, 1.0 - config.norm_offset,
                                                                  dt)
    elif name.endswith("bias"):
      value = lambda k, shape=leaf.shape, dt=leaf.dtype: jnp.zeros(shape, dt)
    else:
      std = 0.02 if name in ("embed", "lm_head") else leaf.shape[-2] ** -0.5
      normal = lambda k, shape, std=std: jax.random.normal(k, shape, jnp.float32) * std
      if leaf.dtype == jnp.bfloat16 and (frozen_bits or leaf.ndim >= 3):
        value = _drawn_by_layer(normal, leaf.shape, leaf.dtype, frozen_bits)
      else:
        value = lambda k, shape=leaf.shape, dt=leaf.dtype: normal(k, shape).astype(dt)
    out[path] = jax.jit(value, out_shardings=sharding)(jax.random.fold_in(key, i))
    out[path].block_until_ready()
  return out


def _flat(tree, prefix=()) -> dict:
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items() for k, v in _flat(sub, prefix + (key,)).items()}
  return {prefix: tree}


def default_param_dtype(config: LlamaConfig) -> str:
  """The base's storage dtype where the caller chose none: bfloat16 over 1B parameters (a
  float32 8B base is 32 GB), float32 below. Personal tables stay float32 either way."""
  return "bfloat16" if parameter_count(config) > 1e9 else "float32"


def load_decoder(name: str, *, personal=None, dtype="float32",
                 param_dtype: str | None = None, seed: int = 0, progress: bool = True,
                 random_weights: bool = False, unroll_layers: bool = False,
                 leaf_sharding=None, frozen_bits: bool = False):
  """(model, tokenizer). `name`: a zoo name, `tiny-llama`, a .gguf path, a HF folder or hub id.

  `random_weights=True` builds a known zoo architecture with random weights and no tokenizer
  (for throughput benchmarks where the weights cannot be fetched). `unroll_layers=True` runs
  the layers as an unrolled loop instead of a `lax.scan` (see `Llama.forward`).
  `param_dtype` None: `default_param_dtype`. A Hugging Face folder is read one tensor at a
  time straight into device arrays, placed by `leaf_sharding(path, shape)` if given.
  `frozen_bits`: a bfloat16 base is stored as its bits (`models.weight_bits`; drawn so with
  `random_weights`), for a base that is not trained.
  """
  model, tokenizer = _load_decoder(name, personal=personal, dtype=dtype, param_dtype=param_dtype,
                                   seed=seed, progress=progress, random_weights=random_weights,
                                   unroll_layers=unroll_layers, leaf_sharding=leaf_sharding,
                                   frozen_bits=frozen_bits)
  if frozen_bits:  # leaves drawn as bits already are left as they are
    store_frozen_base_as_bits(model)
  return model, tokenizer


def _load_decoder(name, *, personal, dtype, param_dtype, seed, progress, random_weights,
                  unroll_layers, leaf_sharding, frozen_bits):
  build_kwargs = dict(personal=personal, dtype=dtype, param_dtype=param_dtype, seed=seed,
                      unroll_layers=unroll_layers)
  if random_weights:
    from perjax.models.known_configs import known_config
    config = known_config(name)
    build_kwargs["param_dtype"] = param_dtype or default_param_dtype(config)
    return assemble(config, functools.partial(random_base, config, seed=seed,
                                               leaf_sharding=leaf_sharding,
                                               frozen_bits=frozen_bits),
                     **build_kwargs), None
  if name.startswith(TINY_PREFIX):
    tokenizer = byte_tokenizer()
    config = tiny_llama_config(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                               eos_token_ids=(tokenizer.eos_token_id,),
                               pad_token_id=tokenizer.pad_token_id)
    build_kwargs["param_dtype"] = param_dtype or "float32"
    return build(config, None, **build_kwargs), tokenizer
  path = zoo.resolve(name)
  if path.is_file() and path.suffix == ".gguf":
    from perjax.models import gguf_loader, streaming_load
    reader = _gguf_reader(path)
    config = gguf_loader.read_config(reader)
    build_kwargs["param_dtype"] = param_dtype or default_param_dtype(config)
    blocks = gguf_loader.leaf_blocks(reader, config)
    model = assemble(config, lambda leaves: streaming_load.place_leaves(
        leaves, blocks, leaf_sharding, progress), **build_kwargs)
    return model, gguf_loader.read_tokenizer(reader)
  if path.is_dir() and (path / "config.json").exists():
    from perjax.models import hf_loader
    config = hf_loader.read_config(path)
    build_kwargs["param_dtype"] = param_dtype or default_param_dtype(config)
    model = build_from_folder(config, path, leaf_sharding=leaf_sharding, progress=progress,
                              **build_kwargs)
    return model, hf_loader.read_tokenizer(path)
  config, weights, tokenizer = read_checkpoint(name, progress)
  build_kwargs["param_dtype"] = param_dtype or default_param_dtype(config)
  return build(config, weights, **build_kwargs), tokenizer


def load(name: str, **kwargs):
  """Public API: `model, tokenizer = perjax.models.load("smollm2-135m-instruct")`."""
  return load_decoder(name, **kwargs)
