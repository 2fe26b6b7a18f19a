"""A user's own history as training pairs (the OPPU protocol: Tan et al., 2024, "Democratizing
Large Language Models via Personalized Parameter-Efficient Fine-tuning").

Each task says how one profile item becomes an (input, target) pair in its own format
(`Task.profile_pair`, set by its builder):

| task | one profile item becomes |
|---|---|
| LaMP-2 (news / movies), LaMP-3..6 | the task's instruction + the item's text -> its category, tag, score, headline, title, subject (perjax.data.lamp_pairs) |
| LaMP-1, LaMP-7 | no pair: the input needs a text the item lacks (a second reference; the tweet's source) |
| LongLaMP | the instruction with the item's own slots -> its review, abstract or post (lamp_pairs) |
| movielens-tagging / -rating | the movie's title and genres -> the user's tag (vocabulary tags only) / rating |
| studemo | the text -> the annotator's ", "-joined emotions |
| synthetic | the question about the past pick's topic and item -> the pick |
| persona-chat | "Partner: Tell me about yourself." -> the persona fact |
| dsp-preferences | no profiles (preference pairs only) |

What an example's pairs never hold (`own_history_pairs`): items of anyone else (only the
example's own profile is read), the item being predicted (the example's id, the example's
input, and for a task without labels the example's target), and items dated at or after the
example where both times are known. A per-user parameter row serves all of a user's evaluated
examples, so `user_history_pairs` keeps only the pairs that every one of them allows.
"""
from typing import Sequence

from perjax.data.schema import PersonalizedExample, ProfileItem, Task

Pair = tuple[str, str, ProfileItem]


def _norm(text: str | None) -> str:
  return " ".join((text or "").split()).lower()


def _allowed(task: Task, example: PersonalizedExample, item: ProfileItem, pair) -> bool:
  """Whether an own item, as `pair`, may train a row that predicts `example`."""
  if item.id == example.id:
    return False
  if item.time is not None and example.time is not None and item.time >= example.time:
    return False
  if _norm(pair[0]) == _norm(example.input):
    return False  # the same question: its answer is the example's own
  # Without a label set a target is free text: the same text is the example's answer itself.
  return task.labels is not None or example.target is None or \
      _norm(pair[1]) != _norm(example.target)


def own_history_pairs(task: Task, example: PersonalizedExample) -> list[Pair]:
  """(input, target, item) for each item of `example`'s own profile that forms a pair and may
  train a row predicting `example` (see the module docstring), oldest first."""
  if task.profile_pair is None:
    return []
  out = []
  for item in example.profile:
    pair = task.profile_pair(item)
    if pair is not None and _allowed(task, example, item, pair):
      out.append((pair[0], pair[1], item))
  return out


def user_history_pairs(task: Task, examples: Sequence[PersonalizedExample]
                       ) -> dict[str, list[Pair]]:
  """user id -> the pairs from that user's own profiles that every one of the user's
  `examples` allows: an item must be earlier than each of them where times are known, and in
  each one's own profile where they are not."""
  by_user: dict[str, list[PersonalizedExample]] = {}
  for e in examples:
    by_user.setdefault(e.user_id, []).append(e)
  out = {}
  for user, mine in by_user.items():
    candidates: dict[str, Pair] = {}
    for e in mine:
      for p in own_history_pairs(task, e):
        candidates.setdefault(p[2].id, p)
    profiles = [{it.id for it in e.profile} for e in mine]
    out[user] = sorted(
        (p for p in candidates.values()
         if all(_allowed(task, e, p[2], p) and
                (p[2].id in ids or (p[2].time is not None and e.time is not None))
                for e, ids in zip(mine, profiles))),
        key=lambda p: (p[2].time is None, p[2].time or 0.0))
  return out
