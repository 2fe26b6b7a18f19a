"""Peer statistics in the prompt: what other users answered for the same input, summarised, and
how this user departs from them. The collaborative-filtering signal (an item's mean rating plus
the user's bias, Koren et al. 2009) given to the model as text, in the spirit of LLM rating
prediction with collaborative context (Kang et al. 2023, "Do LLMs Understand User Preferences?").

Another user's answer to an input is a profile item of theirs whose training pair
(`Task.profile_pair`) has that input. The granularity decides whose items count: everyone's
(global) or the user's persona's. Only other users' items count, so the no-leak rule holds by
construction: the example's own answer is never among them.

For numeric answers (ratings) the prompt says how many other users answered and their mean, and,
from the user's own profile, the mean of (their answer - others' shrunk mean) over the items
others answered too: the user's bias. For other answers it lists the most frequent ones with
their counts. `shrink` pulls an item's mean towards the pool's mean by that many pseudo-answers
(a few answers say little about an item). With `estimate`, a numeric prompt also gives the sum the
two statistics imply, the item's shrunk mean plus the user's bias (the pool's mean where nobody
else answered), so that the model reads one number instead of adding two; `round_estimate` adds
it rounded to a whole answer ("Estimate from these: 3.6 (rounded: 4)."), which a model can copy
where it would otherwise have to learn where 3.5 falls.
"""
import collections

from perjax.errors import ConfigError
from perjax.method import Method, register
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique


def _number(text: str) -> float | None:
  try:
    return float(text)
  except ValueError:
    return None


def _key(text: str) -> str:
  return " ".join(text.split()).lower()


class PeerIndex:
  """input -> [(user, answer)] over one pool's items that form training pairs."""

  def __init__(self, pool, pair):
    self.answers = collections.defaultdict(list)
    for item, owner in zip(pool.items, pool.owners):
      p = pair(item)
      if p is not None:
        self.answers[_key(p[0])].append((owner, p[1]))
    numbers = [_number(a) for answers in self.answers.values() for _, a in answers]
    self.numeric = bool(numbers) and all(n is not None for n in numbers)
    self.mean = sum(numbers) / len(numbers) if self.numeric else 0.0
    self.low, self.high = (int(min(numbers)), int(max(numbers))) if self.numeric else (0, 0)

  def others(self, text: str, user: str) -> list[str]:
    return [a for owner, a in self.answers.get(_key(text), ()) if owner != user]

  def rounded(self, value: float) -> int:
    """`value` to the nearest whole number (halves up) within the range of the pool's answers."""
    return min(self.high, max(self.low, int(value + 0.5)))

  def shrunk_mean(self, answers: list[str], shrink: float) -> float:
    return (sum(float(a) for a in answers) + shrink * self.mean) / (len(answers) + shrink)


def _numeric_lines(index, example, text, pair, shrink, estimate, rounded) -> list[str]:
  others = index.others(text, example.user_id)
  lines = [f"Other users' ratings of this: {len(others)}" +
           (f", mean {sum(float(a) for a in others) / len(others):.1f}." if others else ".")]
  offsets, bias = [], 0.0
  for item in example.profile:
    p = pair(item)
    peers = index.others(p[0], example.user_id) if p is not None else []
    if peers and _number(p[1]) is not None:
      offsets.append(float(p[1]) - index.shrunk_mean(peers, shrink))
  if offsets:
    bias = sum(offsets) / len(offsets)
    lines.append(f"This user's past ratings run {abs(bias):.1f} "
                 f"{'above' if bias >= 0 else 'below'} other users' mean ratings of the same "
                 f"items ({len(offsets)} items).")
  if estimate:
    guess = (index.shrunk_mean(others, shrink) if others else index.mean) + bias
    shown = f"{guess:.1f}"  # rounded as shown, so that 3.46 reads "3.5 (rounded: 4)"
    lines.append(f"Estimate from these: {shown}" +
                 (f" (rounded: {index.rounded(float(shown))})." if rounded else "."))
  return lines


def _label_lines(index, example, text, top) -> list[str]:
  counts = collections.Counter(index.others(text, example.user_id)).most_common(top)
  shown = ", ".join(f"{a} ({n})" for a, n in counts) if counts else "none"
  return [f"Other users' answers to this: {shown}."]


def prompt(examples, prompts, ctx):
  if ctx.pair is None:
    raise ConfigError("peer_stats needs a task whose profile items form (input, answer) pairs "
                      "(Task.profile_pair); this data set has none")
  shrink, top = float(ctx.options["shrink"]), int(ctx.options["top"])
  estimate, rounded = ctx.options["estimate"], ctx.options["round_estimate"]
  for name, value in (("estimate", estimate), ("round_estimate", rounded)):
    if not isinstance(value, bool):
      raise ConfigError(f"methods.peer_stats.{name} must be true or false, got {value!r}")
  if rounded and not estimate:
    raise ConfigError("methods.peer_stats.round_estimate rounds the stated estimate: it needs "
                      "methods.peer_stats.estimate=true")
  if shrink < 0 or top < 1:
    raise ConfigError(f"methods.peer_stats: shrink must be >= 0 and top >= 1, got {shrink}, "
                      f"{top}")
  indexes = {}  # one per pool: a persona's, or everyone's
  out = []
  for example, text in zip(examples, prompts):
    pool = ctx.pools.including([example]).of(example)
    if id(pool) not in indexes:
      indexes[id(pool)] = (pool, PeerIndex(pool, ctx.pair))  # the pool kept alive with its id
    index = indexes[id(pool)][1]
    lines = (_numeric_lines(index, example, example.input, ctx.pair, shrink, estimate, rounded)
             if index.numeric else _label_lines(index, example, example.input, top))
    out.append("\n".join(lines) + f"\n\n{text}")
  return out


PEER_STATS = register(Method(
    MethodInfo("peer_stats", Technique.PROMPTING, (Granularity.PERSONA, Granularity.GLOBAL),
               "4.2", "collaborative statistics as context: item mean + user bias (Koren et al. "
               "2009) for LLM rating prediction (Kang et al. 2023)"),
    prompt=prompt, defaults={"shrink": 3.0, "top": 3, "estimate": False,
                             "round_estimate": False}))
