"""The gold output's likelihood under the run's final prompt and parameters: for every
evaluated example, log p(target + EOS | prompt) with the row's personal parameters and
per-example inputs, the tokens the training loss scores (`Codec.target_ids`). Runs report
`gold_nll` (the mean per-token negative log-likelihood over all examples' tokens) and
`gold_ppl` = exp(gold_nll), the standard Persona-Chat metric; it needs one forward pass per
example and is far less noisy than a metric of a few greedy answers."""
import math

import numpy as np

from perjax.scoring import target_logprobs
from perjax.training import batching


def gold_rows(codec, prompts, targets) -> list[tuple[list, list]]:
  """(ids, loss_mask) per example: the prompt as the answer was generated from (cut to fit the
  model's context, room kept for the target), then the target's tokens and EOS."""
  generator = codec.generator
  context = generator.config.max_position - generator.prefix_len
  target_ids = [codec.target_ids(t) for t in targets]
  # the room the longest target needs, at most half the context (as for generated answers)
  reserve = min(max((len(t) for t in target_ids), default=1), context // 2)
  return [batching.pack_example(p, t, context)
          for p, t in zip(codec.prompt_ids(prompts, reserve=reserve), target_ids)]


def gold_likelihood(codec, prompts, targets, group_ids, batch_size: int, level_ids=None):
  """([N] summed natural-log likelihood of each gold target, [N] its scored token counts)."""
  rows = gold_rows(codec, prompts, targets)
  # the tokens sequence_logprobs counts: each predicted from the one before it
  tokens = np.array([sum(mask[1:]) for _, mask in rows], np.int64)
  logprobs = target_logprobs(codec.generator, rows, group_ids=group_ids, level_ids=level_ids,
                             batch_size=batch_size)
  return logprobs, tokens


def gold_metrics(logprobs, tokens) -> dict[str, float]:
  """{gold_nll, gold_ppl}, token-weighted over the examples (perjax.stats does the same per
  bootstrap resample)."""
  nll = -float(np.sum(logprobs)) / max(int(np.sum(tokens)), 1)
  return {"gold_nll": nll, "gold_ppl": math.exp(nll)}
