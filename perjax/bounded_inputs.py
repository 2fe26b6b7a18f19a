"""Inputs bounded by the model: prompts cut to fit its context, and evaluation batches formed
by length so that memory is set by each batch, not by the longest example times the batch.

A cut keeps the head of a prompt (chat header, system prompt, the task's instruction) and its
end (the question right before the answer, the generation prompt); the middle, where long
inputs and retrieved profiles sit, is what goes.
"""
import sys
from typing import Sequence


def prompt_limit(context: int, *, reserve: int = 0, prefix: int = 0,
                 max_tokens: int | None = None) -> int:
  """The most prompt tokens that fit: the context less the answer's room (`reserve`) and any
  soft-prompt `prefix`, further capped by a configured `max_tokens` (0 or None: no cap)."""
  limit = context - reserve - prefix
  if max_tokens:
    limit = min(limit, max_tokens)
  return max(limit, 2)  # a head token and a tail token at the very least


def cut_middle(ids: Sequence[int], limit: int) -> list[int]:
  """`ids` itself when it fits, else its first half-limit tokens and its last ones."""
  ids = list(ids)
  if len(ids) <= limit:
    return ids
  head = limit // 2
  return ids[:head] + ids[len(ids) - (limit - head):]


def fit_prompts(prompts: Sequence[Sequence[int]], limit: int, *, why: str = "") -> list[list[int]]:
  """Every prompt cut to at most `limit` tokens; one warning line counts the cut ones."""
  out = [cut_middle(p, limit) for p in prompts]
  cut = sum(len(p) > limit for p in prompts)
  if cut:
    longest = max(len(p) for p in prompts)
    why = f"{why}; " if why else ""
    print(f"perjax: warning: {cut} of {len(prompts)} prompts were longer than {limit} tokens "
          f"({why}the longest has {longest}); cut to fit, keeping their start and end",
          file=sys.stderr)
  return out


def length_batches(lengths: Sequence[int], batch_size: int, bucket: int = 32) -> list[list[int]]:
  """Indices grouped into batches of similar length, shortest first. A batch holds at most
  `batch_size` rows, and at most as many padded tokens as `batch_size` rows of the median
  length: a batch of long prompts has fewer rows, one over-long prompt a batch of its own."""
  if not lengths:
    return []
  pad = lambda n: max(bucket, -(-n // bucket) * bucket)
  order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
  budget = batch_size * pad(lengths[order[len(order) // 2]])
  batches, current = [], []
  for i in order:
    rows = len(current) + 1
    if current and (rows > batch_size or rows * pad(lengths[i]) > budget):
      batches.append(current)
      current = []
    current.append(i)
  batches.append(current)
  return batches


def cap_new_tokens(requested: int, context: int, prompt_len: int, *, name: str) -> int:
  """`requested` new tokens, or fewer where they would not fit in the context after a prompt of
  `prompt_len` tokens (at least half the context: a longer prompt is cut instead), with one
  line naming the setting `name` that was capped."""
  room = max(context - prompt_len, context // 2)
  if requested <= room:
    return requested
  print(f"perjax: {name} {requested} capped at {room} (the model's context is {context} "
        "tokens)", file=sys.stderr)
  return room
