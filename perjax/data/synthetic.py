"""An embedded synthetic task whose answers need both persona- and user-level knowledge.

Each persona has a favourite option per topic; each user of the persona overrides the favourite
on some topics. An example asks which option the user picks for an item of a topic; the input
names only the topic and item, so a model without the user's history can at best learn the
population's majority. The profile lists the user's past picks (topic, item, choice), so
retrieving the same-topic picks, or training on them, recovers the answer. Options are short
single words so a small LM can emit them. Everything is generated from the seed; no files.
"""
import dataclasses
import random

from perjax.data.catalog import dataset
from perjax.data.schema import ProfileItem, Task
from perjax.data.splits import Record, history_splits
from perjax.errors import ConfigError

TOPICS = ("food", "music", "sport", "travel", "movie", "book", "drink", "pet", "game", "art",
          "color", "season", "car", "garden", "dance", "science")
OPTIONS = ("red", "blue", "green", "gold", "pink", "gray")
_ITEMS = ("apple", "river", "stone", "cloud", "tiger", "lamp", "piano", "rocket", "maple",
          "candle", "harbor", "violin")


def synthetic_preferences(n_personas, users_per_persona, n_topics, n_options, override_prob, seed):
  """(persona favourites [persona][topic], user choices {user: [topic] -> option index})."""
  rng = random.Random(f"synthetic:{seed}")
  favourites = [[rng.randrange(n_options) for _ in range(n_topics)] for _ in range(n_personas)]
  users = {}
  for p in range(n_personas):
    for u in range(users_per_persona):
      prefs = list(favourites[p])
      for t in range(n_topics):
        if rng.random() < override_prob:  # this user departs from the persona on topic t
          prefs[t] = (prefs[t] + 1 + rng.randrange(n_options - 1)) % n_options
      users[(p, u)] = prefs
  return favourites, users


def question(topic: str, item: str, options) -> str:
  return (f"Topic: {topic}. Item: {item}. Which option does this user pick? "
          f"Options: {', '.join(options)}.")


@dataclasses.dataclass(frozen=True)
class PickPair:
  """A past pick (topic, item, choice) as the question an example asks, with the choice."""
  options: tuple[str, ...]

  def __call__(self, item: ProfileItem) -> tuple[str, str] | None:
    f = item.fields
    if not f.get("topic") or not f.get("item") or f.get("choice") not in self.options:
      return None
    return question(f["topic"], f["item"], self.options), f["choice"]


@dataset("synthetic", "persona",
         "generated users in personas; the pick per topic follows the persona's favourite unless "
         "the user overrides it; profile = the user's past picks", split_kinds=("time", "user"))
def synthetic(split="time", seed=0, n_personas=4, users_per_persona=4, examples_per_user=16,
              profile_size=24, n_topics=6, n_options=4, override_prob=0.3, label_noise=0.0,
              fractions=(0.5, 0.25, 0.25)) -> Task:
  """Each user gets `profile_size` history-only picks followed by `examples_per_user` examples
  (one per day); every example's profile is the user's `profile_size` most recent earlier picks.
  Split "time" holds out each user's latest examples (the users are seen in training, as
  per-user parameters need); "user" holds out whole users."""
  if not 1 <= n_topics <= len(TOPICS) or not 2 <= n_options <= len(OPTIONS):
    raise ConfigError(f"need 1 <= n_topics <= {len(TOPICS)} and 2 <= n_options <= {len(OPTIONS)}")
  options = OPTIONS[:n_options]
  _, users = synthetic_preferences(n_personas, users_per_persona, n_topics, n_options,
                                   override_prob, seed)
  records = []
  for (p, u), prefs in sorted(users.items()):
    rng = random.Random(f"synthetic:{seed}:{p}:{u}")
    uid, pid = f"p{p}-u{u}", f"persona{p}"
    for step in range(profile_size + examples_per_user):
      t = rng.randrange(n_topics)
      topic, item = TOPICS[t], f"{rng.choice(_ITEMS)}-{rng.randrange(100)}"
      pick = prefs[t] if rng.random() >= label_noise else rng.randrange(n_options)
      fields = {"topic": topic, "item": item, "choice": options[pick]}
      records.append(Record(
          id=f"syn-{uid}-{step}", user_id=uid, input=question(topic, item, options),
          target=options[pick], item=ProfileItem(f"{uid}-{step}", fields, float(step)),
          time=float(step), persona_id=pid, is_example=step >= profile_size))
  splits = history_splits(records, by=split, seed=seed, fractions=fractions,
                          min_history=min(1, profile_size), max_profile=profile_size)
  return Task("synthetic", "persona", splits, ("accuracy", "f1"), options, split,
              f"{n_personas} personas x {users_per_persona} users, {n_topics} topics, "
              f"{n_options} options", profile_pair=PickPair(options))
