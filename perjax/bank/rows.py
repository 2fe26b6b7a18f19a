"""One user's row in the bank: their slice of every personal table and of its per-group optimizer
state (moments and step count), packed into one run of bytes.

Byte 0 marks a written row: the bank's arrays are created empty (every byte the fill value 0),
so a user never written reads back as a 0 marker, and their row is the deterministic initial one
(`RowInit`), computed on read. A million-user bank therefore costs nothing until users train.
"""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from perjax.errors import ConfigError
from perjax.models.personal import Personal


def _path_name(path) -> str:
  parts = []
  for key in path:
    name = getattr(key, "key", getattr(key, "name", getattr(key, "idx", key)))
    parts.append(str(name))
  return "/".join(parts)


class RowLayout:
  """How the `[G, ...]` leaves of a TrainState's `personal` and `opt_personal` trees map onto a
  row of bytes: marker, then the personal leaves (what serving reads), then the optimizer's."""

  def __init__(self, personal, opt_personal):
    self.personal_def = jax.tree.structure(personal)
    self.opt_def = jax.tree.structure(opt_personal)
    p_leaves = jax.tree_util.tree_flatten_with_path(personal)[0]
    o_leaves = jax.tree_util.tree_flatten_with_path(opt_personal)[0]
    leaves = p_leaves + o_leaves
    groups = {np.shape(x)[0] if np.ndim(x) else None for _, x in leaves}
    if len(groups) != 1 or None in groups:
      raise ConfigError("an adapter bank needs every personal table and its optimizer state to "
                        "lead with the run's group axis (modules at another level, e.g. "
                        "lora@global, stay on the device)")
    self.names = [_path_name(p) for p, _ in leaves]
    self.shapes = [tuple(np.shape(x)[1:]) for _, x in leaves]
    self.dtypes = [np.dtype(x.dtype) for _, x in leaves]
    self.num_personal = len(p_leaves)
    sizes = [int(np.prod(s, dtype=np.int64)) * d.itemsize for s, d in zip(self.shapes, self.dtypes)]
    self.offsets = np.concatenate([[1], 1 + np.cumsum(sizes)]).astype(int).tolist()
    self.row_bytes = self.offsets[-1]
    self.personal_bytes = self.offsets[self.num_personal]  # marker + personal leaves

  def describe(self) -> list:
    """What a bank on disk records, to refuse reopening it with another layout."""
    return [[n, list(s), str(d)] for n, s, d in zip(self.names, self.shapes, self.dtypes)]

  def pack(self, leaves) -> np.ndarray:
    """uint8 `[k, row_bytes]` of every leaf's `[k, ...]` rows (all leaves, personal first)."""
    k = np.shape(leaves[0])[0]
    parts = [np.ones((k, 1), np.uint8)]
    for x, d in zip(leaves, self.dtypes):
      parts.append(np.ascontiguousarray(np.asarray(x, d)).reshape(k, -1).view(np.uint8))
    return np.concatenate(parts, axis=1)

  def unpack(self, rows: np.ndarray, personal_only: bool = False) -> list[np.ndarray]:
    """The leaves `[k, ...]` of packed rows (only the personal ones with `personal_only`)."""
    k = rows.shape[0]
    count = self.num_personal if personal_only else len(self.shapes)
    out = []
    for i in range(count):
      raw = np.ascontiguousarray(rows[:, self.offsets[i]:self.offsets[i + 1]])
      out.append(raw.view(self.dtypes[i]).reshape((k,) + self.shapes[i]))
    return out

  @staticmethod
  def written(rows: np.ndarray) -> np.ndarray:
    return rows[:, 0] == 1

  def trees(self, leaves):
    """(personal, opt_personal) trees of `[k, ...]` leaves."""
    personal = jax.tree.unflatten(self.personal_def, leaves[:self.num_personal])
    opt = jax.tree.unflatten(self.opt_def, leaves[self.num_personal:])
    return personal, opt


class RowInit:
  """A user's initial row, a pure function of (seed, user): their personal modules built as a
  1-group stack from `fold_in(key(seed), user)`, and the optimizer's initial state for it.

  `row_builder`: a personal builder `(dims, rngs) -> PersonalStack` with one group (e.g.
  `personal.single(factory, 1)`), the same modules as the training table.
  """

  def __init__(self, layout: RowLayout, row_builder, dims, personal_tx, seed: int):
    self.layout = layout
    key = jax.random.key(seed)
    wanted = [n.split("/", 1)[1] for n in layout.names[:layout.num_personal]]  # drop "personal/"

    def init(users):
      keys = jax.vmap(lambda u: jax.random.fold_in(key, u))(users)
      built = jax.vmap(lambda k: nnx.state(row_builder(dims, nnx.Rngs(params=k)), Personal))(keys)
      by_name = {_path_name(p): x[:, 0] for p, x in jax.tree_util.tree_flatten_with_path(built)[0]}
      missing = [n for n in wanted if n not in by_name]
      if missing:
        raise ConfigError(f"the row builder makes no table(s) {missing} of the training table")
      personal = jax.tree.unflatten(layout.personal_def, [by_name[n] for n in wanted])
      return jax.tree.leaves(personal) + jax.tree.leaves(personal_tx.init(personal))

    self._init = jax.jit(init)

  def __call__(self, users) -> list[np.ndarray]:
    """Every leaf `[k, ...]` of the users' initial rows, on the host."""
    users = np.asarray(users, np.int32)
    k = len(users)
    padded = 1 << max(k - 1, 0).bit_length()  # power-of-two sizes: few compilations
    ids = np.concatenate([users, np.zeros(padded - k, np.int32)])
    return [np.asarray(x)[:k] for x in self._init(jnp.asarray(ids))]
