"""Persona granularity: groups of similar users.

Where every training example carries a persona label (and `persona.use_labels`), a persona is a
label, and users with a label never seen in training fall back to an extra group. Otherwise users
are clustered: k-means (seeded, numpy) over the mean sentence embedding of their profile items,
with K = `granularities.persona.clusters`; a new user joins the nearest centroid. Prompting
pools the profiles of the user's persona (the user's own included).
"""
import numpy as np

from perjax.errors import ConfigError
from perjax.grouping import Grouping, Groups, PoolPolicy, register
from perjax.taxonomy import Granularity

CLUSTER_POOL = PoolPolicy(key=lambda example, group: group,
                          header=lambda key: "Past items of this user and similar users")


def _by_labels(train) -> Groups:
  personas = sorted({e.persona_id for e in train})
  index = {p: g for g, p in enumerate(personas)}
  fallback = len(personas)

  def unseen(examples):  # a new user of a known persona still gets that persona's group
    return {e.user_id: index.get(e.persona_id, fallback) for e in examples}

  # Users of personas never seen in training share the fallback group's parameters, but each
  # persona keeps its own pool.
  pool = PoolPolicy(
      key=lambda example, group: group if group != fallback else ("new", example.persona_id),
      header=lambda key: "Past items of users with this user's persona")
  return Groups(num_groups=len(personas) + 1, pool=pool,
                known={e.user_id: index[e.persona_id] for e in train}, assign_unseen=unseen,
                names=tuple(personas) + ("<unseen>",))


def profile_embeddings(examples, encoder, max_items: int) -> tuple[list[str], np.ndarray]:
  """(users, [U, D] unit vectors): the mean embedding of each user's latest profile items."""
  items: dict[str, dict] = {}
  for e in examples:
    for it in e.profile:
      items.setdefault(e.user_id, {})[it.id] = it
  users = sorted(items)
  texts, owner = [], []
  for i, u in enumerate(users):
    latest = sorted(items[u].values(), key=lambda it: (it.time or 0.0, it.id))[-max_items:]
    texts += [it.text for it in latest]
    owner += [i] * len(latest)
  if not texts:
    return [], np.zeros((0, 1))
  emb = np.asarray(encoder.encode(texts), np.float64)
  sums = np.zeros((len(users), emb.shape[1]))
  np.add.at(sums, np.asarray(owner), emb)
  sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
  return users, sums


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 50) -> np.ndarray:
  """Centroids [k, D] by Lloyd's algorithm from a k-means++ start; deterministic given seed."""
  rng = np.random.default_rng(seed)
  centroids = [x[rng.integers(len(x))]]
  for _ in range(1, k):
    d2 = np.min(((x[:, None] - np.asarray(centroids)[None]) ** 2).sum(-1), axis=1)
    p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1 / len(x))
    centroids.append(x[rng.choice(len(x), p=p)])
  c = np.asarray(centroids)
  for _ in range(iters):
    assign = nearest(x, c)
    new = np.asarray([x[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(k)])
    if np.allclose(new, c):
      break
    c = new
  return c


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
  return np.argmin(((x[:, None] - centroids[None]) ** 2).sum(-1), axis=1)


def _by_clusters(train, ctx) -> Groups:
  if ctx.encoder is None:
    raise ConfigError("persona clustering needs a sentence encoder (config.encoder)")
  encoder, max_items = ctx.encoder(), int(ctx.options["max_items"])
  users, x = profile_embeddings(train, encoder, max_items)
  if not users:
    raise ConfigError("persona clustering needs profile items, and the training users have none")
  k = min(int(ctx.options["clusters"]), len(users))
  centroids = kmeans(x, k, ctx.seed)
  known = dict(zip(users, nearest(x, centroids).tolist()))

  def unseen(examples):
    new_users, y = profile_embeddings(examples, encoder, max_items)
    out = {e.user_id: 0 for e in examples}  # no profile at all: the first cluster
    out.update(zip(new_users, nearest(y, centroids).tolist()) if new_users else {})
    return out

  return Groups(num_groups=k, pool=CLUSTER_POOL, known=known, assign_unseen=unseen,
                names=tuple(f"cluster{j}" for j in range(k)))


def fit(train, ctx) -> Groups:
  labelled = all(e.persona_id is not None for e in train)
  if ctx.options["use_labels"] and labelled:
    return _by_labels(train)
  return _by_clusters(train, ctx)


PERSONA = register(Grouping(
    "persona", Granularity.PERSONA, fit,
    defaults={"use_labels": True, "clusters": 4, "max_items": 32},
    description="persona labels where the data has them, else k-means over profile embeddings"))
