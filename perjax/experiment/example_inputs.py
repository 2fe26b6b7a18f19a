"""Per-example inputs of personal modules (`Method.example_inputs`, `PersonalModule.inputs`):
arrays computed once per example in the data stage (e.g. sentence embeddings of the history
the example may see), which travel beside the examples' group ids of other levels (`perjax.per_example.PerExample`)
into training batches, decoding and scoring."""
import numpy as np

from perjax.errors import ConfigError
from perjax.experiment.options import method_options
from perjax.prompting import PromptContext


def example_inputs(recipe, pools, examples, split: str, config, encoder) -> dict:
  """{key: [N, ...] array} of every composed method that computes per-example inputs.
  `pools`: {level: Pools} as for the prompting slots (None: the run's granularity);
  `encoder`: the loader of the run's sentence encoder."""
  out = {}
  for m in recipe.methods:
    if m.example_inputs is None:
      continue
    ctx = PromptContext(options=method_options(config, m.name), split=split,
                        pools=pools[recipe.level_of(m)], seed=config.seed, encoder=encoder)
    for key, values in m.example_inputs(examples, ctx).items():
      values = np.asarray(values)
      if key in out:
        raise ConfigError(f"two methods compute the per-example input {key!r}")
      if len(values) != len(examples):
        raise ValueError(f"{m.name}.example_inputs gave {len(values)} rows of {key!r} for "
                         f"{len(examples)} examples")
      out[key] = values
  return out
