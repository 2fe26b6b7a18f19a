"""Turning (prompt, target) token sequences into fixed-shape training batches."""
import numpy as np


def pack_example(prompt_ids, target_ids, max_len: int):
  """Prompt then target, truncated from the left of the prompt to fit `max_len`.

  Returns (ids, loss_mask): the loss covers only target tokens (their predictions come from the
  position before each one).
  """
  target_ids = list(target_ids)[:max_len - 1]
  keep = max_len - len(target_ids)
  prompt_ids = list(prompt_ids)[-keep:] if keep > 0 else []
  ids = prompt_ids + target_ids
  mask = [0] * len(prompt_ids) + [1] * len(target_ids)
  return ids, mask


def make_batch(examples, seq_len: int, pad_id: int, accum: int = 1) -> dict:
  """examples: list of (ids, loss_mask, group_id), len == accum * B. Right padding.

  Returns numpy arrays shaped [accum, B, seq_len] (and [accum, B] for group ids and
  `group_tokens`: the loss-token count of the example's group over the whole batch / accum, so
  accumulated micro-batches give each group the mean over all its tokens; see objectives).
  """
  n = len(examples)
  if n % accum:
    raise ValueError(f"{n} examples do not split into {accum} micro-batches")
  ids = np.full((n, seq_len), pad_id, np.int32)
  loss_mask = np.zeros((n, seq_len), np.int32)
  attention = np.zeros((n, seq_len), np.int32)
  groups = np.zeros((n,), np.int32)
  for row, (seq, mask, group) in enumerate(examples):
    seq, mask = list(seq)[:seq_len], list(mask)[:seq_len]
    ids[row, :len(seq)] = seq
    loss_mask[row, :len(mask)] = mask
    attention[row, :len(seq)] = 1
    groups[row] = group
  counted = loss_mask[:, 1:].sum(axis=1)  # the tokens the loss sees (predicted from t-1)
  per_group = {int(g): counted[groups == g].sum() for g in np.unique(groups)}
  group_tokens = np.array([per_group[int(g)] for g in groups], np.float32) / accum
  shape = lambda a: a.reshape((accum, n // accum) + a.shape[1:])
  return {"input_ids": shape(ids), "loss_mask": shape(loss_mask),
          "attention_mask": shape(attention), "group_ids": shape(groups),
          "group_tokens": shape(group_tokens)}


def make_preference_batch(pairs, seq_len: int, pad_id: int, accum: int = 1) -> dict:
  """pairs: list of (chosen (ids, loss_mask), rejected (ids, loss_mask), group_id).

  Returns {"chosen": rows, "rejected": rows} (each a `make_batch` dict, row i of both = pair i),
  plus per pair [accum, B] `group_ids`, `real` (the pair has response tokens; empty padding pairs
  do not) and `group_pairs`: its group's real pair count over the whole batch / accum, the
  pair-level analogue of `group_tokens`, so a group's mean runs over all its micro-batches.
  """
  chosen = make_batch([c + (g,) for c, _, g in pairs], seq_len, pad_id, accum)
  rejected = make_batch([r + (g,) for _, r, g in pairs], seq_len, pad_id, accum)
  groups = np.array([g for _, _, g in pairs], np.int32)
  real = np.array([sum(c[1]) > 0 for c, _, _ in pairs], np.float32)
  per_group = {int(g): real[groups == g].sum() for g in np.unique(groups)}
  group_pairs = np.array([per_group[int(g)] for g in groups], np.float32) / accum
  shape = lambda a: a.reshape((accum, len(pairs) // accum))
  return {"chosen": chosen, "rejected": rejected, "group_ids": shape(groups),
          "real": shape(real), "group_pairs": shape(group_pairs)}
