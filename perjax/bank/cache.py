"""Serving any of a bank's users: an LRU cache of the model's personal rows (its slots) in front
of the bank, so one generation batch mixes users who are not on the device yet."""
from collections import OrderedDict

import jax
import numpy as np
from flax import nnx

from perjax.bank.store import AdapterBank
from perjax.errors import ConfigError
from perjax.generation import Generator
from perjax.models.personal import Personal


class SlotCache:
  """The model's personal table rows as slots for bank users, least recently used evicted."""

  def __init__(self, bank: AdapterBank, model):
    self.bank, self.model = bank, model
    personal = nnx.state(model, Personal)
    if jax.tree.structure(personal) != bank.layout.personal_def:
      raise ConfigError("the model's personal modules are not the bank's (other methods or "
                        "options than the bank was created with)")
    self.capacity = np.shape(jax.tree.leaves(personal)[0])[0]
    self.slot_of: OrderedDict[int, int] = OrderedDict()
    self.loaded = 0  # rows read from the bank so far

  def slots(self, users) -> tuple[np.ndarray, bool]:
    """(slot id per entry of `users`, whether any row was loaded): every distinct user of the
    batch is put in a slot, reading the missing ones' personal rows from the bank."""
    users = np.asarray(users, np.int64)
    distinct = list(dict.fromkeys(users.reshape(-1).tolist()))
    if len(distinct) > self.capacity:
      raise ConfigError(f"{len(distinct)} distinct users in one batch, but the cache has "
                        f"{self.capacity} slots")
    missing = []
    for u in distinct:
      if u in self.slot_of:
        self.slot_of.move_to_end(u)  # this batch's users are evicted last
      else:
        missing.append(u)
    if missing:
      free = sorted(set(range(self.capacity)) - set(self.slot_of.values()))
      targets = []
      for u in missing:
        slot = free.pop(0) if free else self.slot_of.popitem(last=False)[1]
        self.slot_of[u] = slot
        targets.append(slot)
      self._load(np.asarray(missing), np.asarray(targets))
    return np.vectorize(self.slot_of.__getitem__, otypes=[np.int32])(users), bool(missing)

  def _load(self, users, slots) -> None:
    rows = self.bank.read(users, personal_only=True)
    personal = nnx.state(self.model, Personal)
    leaves, treedef = jax.tree.flatten(personal)
    new = [table.at[slots].set(r.astype(table.dtype)) for table, r in zip(leaves, rows)]
    nnx.update(self.model, jax.tree.unflatten(treedef, new))
    self.loaded += len(users)


class BankGenerator:
  """`Generator` over a bank's users: `generate_ids(prompts, users=...)` with user ids."""

  def __init__(self, bank: AdapterBank, model, tokenizer=None, **generator_kwargs):
    self.model = model
    self.cache = SlotCache(bank, model)
    self.generator = Generator(model, tokenizer, **generator_kwargs)

  def generate_ids(self, prompts, *, users, **kwargs):
    slots, loaded = self.cache.slots(users)
    if loaded:
      self.generator.refresh_personal(self.model)
    return self.generator.generate_ids(prompts, group_ids=slots, **kwargs)
