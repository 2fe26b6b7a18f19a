"""The gold output's likelihood under the run's final prompt and parameters: for every
evaluated example, log p(target + EOS | prompt) with the row's personal parameters and
per-example inputs, the tokens the training loss scores (`Codec.target_ids`). Runs report
`gold_nll` (the mean per-token negative log-likelihood over all examples' tokens) and
`gold_ppl` = exp(gold_nll), the standard Persona-Chat metric; it needs one forward pass per
example and is far less noisy than a metric of a few greedy answers."""
import contextlib
import io
import math

import numpy as np

from perjax.scoring import target_logprobs
from perjax.training import batching


def gold_rows(codec, prompts, targets, reserve: int) -> list[tuple[list, list]]:
  """(ids, loss_mask) per example: the prompt exactly as the answer was generated from (cut to
  the model's context with the answer's `reserve`), then the target's tokens and EOS, those that
  fit in the context (all of them unless a long gold follows a prompt that fills it)."""
  generator = codec.generator
  context = generator.config.max_position - generator.prefix_len
  # the same prompts again: their cut was reported when the answers were made
  with contextlib.redirect_stderr(io.StringIO()):
    prompt_ids = codec.prompt_ids(prompts, reserve=reserve)
  rows = []
  for p, text in zip(prompt_ids, targets):
    target = codec.target_ids(text)[:max(context - len(p), 1)]
    rows.append(batching.pack_example(p, target, len(p) + len(target)))
  return rows


def gold_likelihood(codec, prompts, targets, group_ids, batch_size: int, level_ids=None, *,
                    reserve: int = 1):
  """([N] summed natural-log likelihood of each gold target, [N] its scored token counts)."""
  rows = gold_rows(codec, prompts, targets, reserve)
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
