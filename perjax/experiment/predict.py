"""Greedy generation over the evaluation prompts, and mapping free text onto a task's labels."""
import re
from typing import Sequence

from tqdm.auto import tqdm

from perjax.generation import SamplingConfig


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
