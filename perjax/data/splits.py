"""Deterministic splits of per-user histories into train/dev/test with leak-free profiles.

Builders turn a data set into `Record`s: one observed action of a user, which is both a possible
example and an item of the profile of that user's later examples. `history_splits` then draws:
  user   - whole users go to one split (no user is in two splits); profile = the user's other
           records (earlier ones only when `causal`).
  time   - each user's records are cut by time: the oldest go to train, then dev, the newest to
           test; a profile holds only records older than both the example and the start of the
           example's split, so test labels never reach a train profile or an earlier test example.
  random - like time, but a seeded per-user shuffle replaces the time order (data without times).
"""
import bisect
import dataclasses
import random
from typing import Sequence

from perjax.data.schema import PersonalizedExample, Profile, ProfileItem
from perjax.errors import ConfigError

SPLITS = ("train", "dev", "test")


@dataclasses.dataclass(frozen=True)
class Record:
  id: str
  user_id: str
  input: str
  target: str
  item: ProfileItem
  time: float | None = None
  persona_id: str | None = None
  is_example: bool = True  # False: history only (e.g. a tag outside the task's vocabulary)


def check_fractions(fractions: Sequence[float]):
  if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
    raise ConfigError(f"split fractions must be three non-negative numbers summing to 1, got "
                      f"{tuple(fractions)}")


def cut(n: int, fractions: Sequence[float]) -> tuple[int, int]:
  """Boundaries (end of train, end of dev) for n ordered things; test and dev get at least one
  whenever their fraction is non-zero and n allows."""
  n_test = max(int(fractions[2] > 0), round(n * fractions[2])) if n >= 3 else 0
  n_dev = max(int(fractions[1] > 0), round(n * fractions[1])) if n >= 3 else 0
  return n - n_test - n_dev, n - n_test


def _group(records) -> dict[str, list[Record]]:
  by_user: dict[str, list[Record]] = {}
  for r in records:
    by_user.setdefault(r.user_id, []).append(r)
  return by_user


def history_splits(records: Sequence[Record], by: str = "user", seed: int = 0,
                   fractions: Sequence[float] = (0.8, 0.1, 0.1), causal: bool = True,
                   min_history: int = 1, max_profile: int | None = None,
                   ) -> dict[str, list[PersonalizedExample]]:
  """Splits records into {"train","dev","test"} example lists; see the module docstring."""
  check_fractions(fractions)
  if by not in ("user", "time", "random"):
    raise ConfigError(f"unknown split {by!r}; choose user, time or random")
  if by == "time" and any(r.time is None for r in records):
    raise ConfigError("a time split needs a time on every record")
  if max_profile is not None and min_history > max_profile:
    raise ConfigError(f"min_history={min_history} exceeds max_profile={max_profile}: no record "
                      "could be an example")
  rng = random.Random(seed)
  by_user = _group(records)
  users = sorted(by_user)
  out = {s: [] for s in SPLITS}
  if by == "user":
    rng.shuffle(users)
    for u, split in zip(users, _weighted_cut(users, by_user, fractions)):
      ordered = _time_order(by_user[u])
      out[split] += [ex for ex, _ in _examples(ordered, [0] * len(ordered), causal, min_history,
                                                max_profile)]
    return out
  for u in users:
    recs = by_user[u]
    if by == "time":
      ordered = _time_order(recs)
      stage = _time_stages(ordered, fractions)
      user_causal = causal
    else:
      examples = sorted((r for r in recs if r.is_example), key=lambda r: r.id)
      random.Random(f"{seed}:{u}").shuffle(examples)
      history = sorted((r for r in recs if not r.is_example), key=lambda r: r.id)
      ordered = history + examples  # history-only records belong to train
      a, b = cut(len(examples), fractions)
      stage = [0] * len(history) + [(i >= a) + (i >= b) for i in range(len(examples))]
      user_causal = False  # a shuffled order has no past and future
    for ex, st in _examples(ordered, stage, user_causal, min_history, max_profile):
      out[SPLITS[st]].append(ex)
  return out


def _weighted_cut(users, by_user, fractions) -> list[str]:
  """Split names for shuffled users so each split gets about its fraction of the examples, not
  of the users (a few heavy users would otherwise leave a split nearly empty)."""
  counts = [sum(r.is_example for r in by_user[u]) for u in users]
  total, seen, out = sum(counts), 0, []
  bounds = (fractions[0] * total, (fractions[0] + fractions[1]) * total)
  for c in counts:
    mid = seen + c / 2  # a user goes where the middle of their examples falls
    out.append(SPLITS[(mid >= bounds[0]) + (mid >= bounds[1])])
    seen += c
  for s in (2, 1):  # every split with a non-zero fraction gets a user when there are enough
    if fractions[s] > 0 and SPLITS[s] not in out and len(users) >= 3:
      donor = max((i for i, x in enumerate(out) if out.count(x) > 1), key=lambda i: -counts[i])
      out[donor] = SPLITS[s]
  return out


def _time_order(recs):
  return sorted(recs, key=lambda r: (r.time if r.time is not None else 0.0, r.id))


def _time_stages(ordered, fractions) -> list[int]:
  """Stage (0 train, 1 dev, 2 test) per time-ordered record; records sharing a timestamp share
  a stage, so 'earlier split' always means strictly earlier in time. The fractions count
  examples; history-only records fall in whichever stage their time does."""
  positions = [i for i, r in enumerate(ordered) if r.is_example]  # only examples are counted
  a, b = cut(len(positions), fractions)
  inf = float("inf")
  test_cut = ordered[positions[b]].time if b < len(positions) else inf
  dev_cut = ordered[positions[a]].time if a < len(positions) else inf
  if dev_cut == test_cut < inf:  # a tie would empty dev: start it at the previous time instead
    earlier = [ordered[i].time for i in positions[:a] if ordered[i].time < test_cut]
    dev_cut = max(earlier) if len(earlier) > 1 else test_cut
  cut_times = [dev_cut, test_cut]
  return [(r.time >= cut_times[0]) + (r.time >= cut_times[1]) for r in ordered]


def _examples(ordered, stage, causal, min_history, max_profile):
  """(example, stage) for one user's records, ordered so that stages never decrease.

  A record's profile draws on records of earlier stages, plus the other train records when it
  is in train (stage 0); with `causal`, only on records strictly older than itself.
  """
  n = len(ordered)
  items = [r.item for r in ordered]
  has_time = all(r.time is not None for r in ordered)
  times = [r.time if has_time else float(i) for i, r in enumerate(ordered)]
  stage_start = [next((i for i in range(n) if stage[i] >= s), n) for s in range(len(SPLITS))]
  stage_end = [next((i for i in range(n) if stage[i] > s), n) for s in range(len(SPLITS))]
  cap = n if max_profile is None else max_profile
  out = []
  for i, r in enumerate(ordered):
    if not r.is_example:
      continue
    st = stage[i]
    if causal:
      limit = times[i] if st == 0 else min(times[i], times[stage_start[st]])
      end = bisect.bisect_left(times, limit)
      pool = items[max(0, end - cap):end]
    else:
      end = stage_end[0] if st == 0 else stage_start[st]
      window = range(max(0, end - cap - 1), end)
      pool = [items[j] for j in window if j != i][-cap:] if cap else []
    if len(pool) < min_history:
      continue
    ex = PersonalizedExample(id=r.id, user_id=r.user_id, input=r.input, target=r.target,
                             profile=Profile(tuple(pool)), persona_id=r.persona_id, time=r.time)
    out.append((ex, st))
  return out
