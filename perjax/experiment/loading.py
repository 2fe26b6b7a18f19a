"""The run's model and sentence encoder. Weights are read once per process: a sweep builds many
models from the same checkpoint."""
import functools
import sys

from perjax.training.model_options import set_training_options


@functools.lru_cache(maxsize=1)
def _read_checkpoint(name: str):
  # A sweep builds many models from the same weights: read and dequantize them once.
  from perjax.models.decoder_loading import read_checkpoint
  _say_loading("model", name)
  return read_checkpoint(name, progress=False)


@functools.lru_cache(maxsize=2)
def encoder(name: str):
  """The sentence encoder `name` (dense retrieval, persona clustering), loaded on first use."""
  from perjax.models import load_encoder
  _say_loading("encoder", name)
  return load_encoder(name)


def _say_loading(kind: str, name: str) -> None:
  """One line before a slow step, so a first run is not silent for minutes."""
  from perjax.models import zoo
  fetch = "downloading it (first use), then " if name in zoo.MODELS and not zoo.is_cached(name) \
      else ""
  print(f"loading {kind} {name}: {fetch}reading the weights...", file=sys.stderr)


def load_model(config, personal, *, train_base: bool = False):
  """(model, tokenizer) of the run. The base is stored in bfloat16 over 1B parameters
  (`default_param_dtype`), except when the run trains it: full fine-tuning keeps float32
  master weights."""
  from perjax.models import decoder_loading
  if config.model.startswith(decoder_loading.TINY_PREFIX):
    model, tokenizer = decoder_loading.load_decoder(config.model, personal=personal,
                                                    dtype=config.dtype, seed=config.seed,
                                                    unroll_layers=config.unroll_layers)
  else:
    llama_config, weights, tokenizer = _read_checkpoint(config.model)
    param_dtype = "float32" if train_base else decoder_loading.default_param_dtype(llama_config)
    model = decoder_loading.build(llama_config, weights, personal=personal, dtype=config.dtype,
                                  param_dtype=param_dtype, seed=config.seed,
                                  unroll_layers=config.unroll_layers)
  set_training_options(model, remat=config.get("remat_layers", False),
                       loss_chunk=config.get("loss_chunk", 0),
                       attention=config.get("attention", "default"))
  return model, tokenizer


def personal_builder(recipe, groups, level_groups):
  """The builder of the recipe's personal modules: one row per group of the run's granularity
  (`groups`), and of each other level its modules sit at (`level_groups`)."""
  from perjax.models.personal import stack_builder
  return stack_builder(recipe.modules, {None: groups.num_groups,
                                        **{l: g.num_groups for l, g in level_groups.items()}})
