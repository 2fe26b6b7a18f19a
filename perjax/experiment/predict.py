"""Predictions for the evaluation prompts: greedy generation mapped onto a task's labels
(`generate`), or the label the model finds most likely (`label_likelihood`)."""
import re
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from perjax.errors import ConfigError
from perjax.generation import SamplingConfig
from perjax.scoring import continuation_logprobs

MODES = ("generate", "label_likelihood")


def to_label(text: str, labels: Sequence[str]) -> str:
  """The label `text` names: an exact (case-insensitive) match, else the label mentioned first
  (longest on ties, so "based on a book" beats "book"), else the stripped text itself, which
  then scores as wrong."""
  clean = text.strip().strip(".\"'").strip()
  lower = {l.lower(): l for l in labels}
  if clean.lower() in lower:
    return lower[clean.lower()]
  best = None
  for label in labels:
    m = re.search(r"(?<!\w)" + re.escape(label.lower()) + r"(?!\w)", clean.lower())
    if m and (best is None or (m.start(), -len(label)) < best[0]):
      best = ((m.start(), -len(label)), label)
  return best[1] if best else clean


def generate(generator, prompts, group_ids, config, *, system=None) -> list[str]:
  """Greedy continuations of `prompts` (each with its group's personal parameters)."""
  sampling = SamplingConfig(max_new_tokens=config.eval.max_new_tokens)
  bs = config.eval.batch_size
  outputs = []
  for i in tqdm(range(0, len(prompts), bs), desc="generate", dynamic_ncols=True):
    outputs += generator.generate(prompts[i:i + bs], group_ids=group_ids[i:i + bs],
                                  chat=config.prompt.chat, system=system,
                                  sampling=sampling, seed=config.seed)
  return outputs


def rank_labels(generator, prompts, group_ids, labels, config, *, system=None):
  """(the most likely label, [N, L] log-probs) per prompt. A label is scored as the target the
  training loss sees: its tokens, then EOS, right after the chat-formatted prompt."""
  tok = generator.tokenizer
  eos = list(generator.config.eos_token_ids)[:1]
  candidates = [tok(l, add_special_tokens=False).input_ids + eos for l in labels]
  ids = generator.encode_prompts(prompts, chat=config.prompt.chat, system=system)
  # eval.batch_size counts [prompt + label] rows, so memory stays put as label sets grow
  per_batch = max(1, config.eval.batch_size // len(labels))
  scores = continuation_logprobs(generator, ids, candidates, group_ids=group_ids,
                                 batch_size=per_batch)
  return [labels[i] for i in np.argmax(scores, axis=1)], scores


def predict(generator, prompts, group_ids, labels, config, *, system=None):
  """(raw outputs, predictions): what the model said and the label (or text) it is scored as."""
  mode = config.predict.mode
  if mode not in MODES:
    raise ConfigError(f"predict.mode {mode!r} is not one of {MODES}")
  if mode == "label_likelihood":
    if not labels:
      raise ConfigError("predict.mode=label_likelihood needs a task with a label set")
    preds, _ = rank_labels(generator, prompts, group_ids, labels, config, system=system)
    return preds, preds
  outputs = generate(generator, prompts, group_ids, config, system=system)
  return outputs, [to_label(o, labels) if labels else o.strip() for o in outputs]
