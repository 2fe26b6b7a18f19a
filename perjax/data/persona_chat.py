"""Persona-conditioned dialogue: Synthetic-Persona-Chat (CSV) and ConvAI2 (ParlAI text).

Each set of persona facts is a persona; the speaker holding it is its user, so user_id equals
persona_id (facts rarely repeat across dialogues). The profile is the persona's facts; the input
is the dialogue so far, seen from the speaker ("You:" own turns, "Partner:" the other's).
"""
import random

from perjax.data.catalog import dataset
from perjax.data.files import data_root, read_csv, require
from perjax.data.pairs import FieldPair
from perjax.data.schema import PersonalizedExample, Profile, ProfileItem, Task, stable_id
from perjax.data.splits import SPLITS, cut, check_fractions
from perjax.errors import DataError

_SPC_FILES = ("Synthetic-Persona-Chat_valid.csv", "Synthetic-Persona-Chat_test.csv")
_CONVAI2_FILE = "valid_self_original_no_cands.txt"
# An item is a first-person persona fact, not a turn: as a pair it is the speaker's reply to a
# partner asking about them, in the examples' dialogue format ("Partner: ..." -> own turn).
FACT_PAIR = FieldPair(None, "fact", prefix="Partner: Tell me about yourself.")


def _persona(facts: list[str]) -> tuple[str, Profile]:
  facts = [f.strip() for f in facts if f.strip()]
  pid = "persona-" + stable_id(*sorted(f.lower() for f in facts))
  return pid, Profile(tuple(ProfileItem(f"{pid}-{i}", {"fact": f}) for i, f in enumerate(facts)))


def _turn_examples(source, dialogue_id, turns, speaker, facts, max_turns):
  """Examples for each turn of `speaker` (after the first turn) in [(speaker, text), ...]."""
  pid, profile = _persona(facts)
  out = []
  for i, (who, text) in enumerate(turns):
    if who != speaker or i == 0:
      continue
    history = [("You: " if w == speaker else "Partner: ") + t for w, t in turns[:i]][-max_turns:]
    out.append(PersonalizedExample(id=f"{source}-{dialogue_id}-{i}", user_id=pid,
                                   input="\n".join(history), target=text, profile=profile,
                                   persona_id=pid))
  return out


def _synthetic(path, max_turns):
  rows = read_csv(path, header=True, columns=3)
  out = []
  for n, row in enumerate(rows):
    try:
      facts = {1: row["user 1 personas"].splitlines(), 2: row["user 2 personas"].splitlines()}
      convo = row["Best Generated Conversation"]
    except KeyError as e:
      raise DataError(f"{path}: missing column {e.args[0]!r}") from None
    turns = []
    for line in convo.splitlines():
      head, sep, text = line.partition(":")
      if sep and head.strip() in ("User 1", "User 2"):
        turns.append((int(head.strip()[-1]), text.strip()))
      elif turns and line.strip():
        turns[-1] = (turns[-1][0], turns[-1][1] + " " + line.strip())  # a wrapped turn
    tag = "spc-" + path.stem.rsplit("_", 1)[-1]
    for speaker in (1, 2):
      out += _turn_examples(tag, n, turns, speaker, facts[speaker], max_turns)
  return out


def _convai2(path, max_turns):
  """ParlAI format: numbered lines; "your persona: ..." facts, then "partner<TAB>self" turns.
  A line numbered 1 starts a new dialogue."""
  dialogues, facts, turns = [], [], []
  with open(require(path), encoding="utf-8") as f:
    for k, line in enumerate(f):
      line = line.rstrip("\n")
      if not line.strip():
        continue
      num, _, rest = line.partition(" ")
      if not num.isdigit():
        raise DataError(f"{path}: line {k + 1} does not start with a turn number")
      if num == "1" and (facts or turns):
        dialogues.append((facts, turns))
        facts, turns = [], []
      if rest.startswith("your persona:"):
        facts.append(rest[len("your persona:"):].strip())
        continue
      partner, tab, own = rest.partition("\t")
      if not tab:
        raise DataError(f"{path}: line {k + 1} has no tab between the two utterances")
      turns += [(1, partner.strip()), (2, own.split("\t")[0].strip())]
  if facts or turns:
    dialogues.append((facts, turns))
  out = []
  for n, (facts, turns) in enumerate(dialogues):
    out += _turn_examples("convai2", n, turns, 2, facts, max_turns)
  return out


@dataset("persona-chat", "persona",
         "next utterance given the speaker's persona facts (profile) and the dialogue so far; "
         "Synthetic-Persona-Chat + ConvAI2", split_kinds=("user",))
def persona_chat(data_dir=None, split="user", seed=0, sources=("synthetic", "convai2"),
                 max_turns=6, max_personas=None, fractions=(0.8, 0.1, 0.1)) -> Task:
  """Split "user" keeps each persona (= user) in one split. `max_personas` draws a seeded
  subset to keep runs small."""
  check_fractions(fractions)
  root = data_root(data_dir)
  examples = []
  for source in sources:
    if source == "synthetic":
      for name in _SPC_FILES:
        examples += _synthetic(require(root / "synthetic_persona_chat" / name), max_turns)
    elif source == "convai2":
      examples += _convai2(root / "convai2" / _CONVAI2_FILE, max_turns)
    else:
      raise DataError(f"unknown persona-chat source {source!r}; choose synthetic or convai2")
  personas = sorted({e.persona_id for e in examples})
  random.Random(seed).shuffle(personas)
  if max_personas is not None:
    personas = personas[:max_personas]
  a, b = cut(len(personas), fractions)
  where = {p: SPLITS[(i >= a) + (i >= b)] for i, p in enumerate(personas)}
  splits = {s: [] for s in SPLITS}
  for e in examples:
    if e.persona_id in where:
      splits[where[e.persona_id]].append(e)
  return Task("persona-chat", "persona", splits, ("rouge-1", "rouge-L", "bleu"), None, split,
              f"persona-conditioned dialogue from {', '.join(sources)}",
              profile_pair=FACT_PAIR)
