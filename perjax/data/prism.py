"""PRISM (Kirk et al. 2024) conversations as per-user preference pairs.

PRISM's `conversations.jsonl` holds one conversation per line: `conversation_id`, `user_id` and
`conversation_history`, a list of utterances `{turn, role ("user" or "model"), content, score
(1-100, model utterances), if_chosen, ...}`. In each turn a participant rated several model
responses to their message; the highest-rated one continued the conversation. A pair prefers
the chosen response of a turn over each response of that turn rated lower (by more than
`min_gap`); its prompt is the participant's message after the conversation so far (the chosen
path, as "User: ... / Assistant: ..." lines). The dataset's `path` names the file (the full
PRISM set is downloaded by its users, HannahRoseKirk/prism-alignment on Hugging Face).
"""
import json
import random
from pathlib import Path

from perjax.data.catalog import dataset
from perjax.data.files import data_root, require
from perjax.data.schema import PreferenceExample, Task
from perjax.data.splits import SPLITS, check_fractions, cut
from perjax.errors import ConfigError, DataError

_FILE = Path("prism") / "conversations.jsonl"


def read_conversations(path) -> list[dict]:
  """The conversations of a PRISM-format JSON-lines file; a malformed line is a DataError
  naming the file, the line and what is wrong."""
  path = require(path)
  out = []
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(f"{path}:{n}: malformed JSON ({e.msg})") from None
      where = f"{path}:{n}"
      if not isinstance(row, dict):
        raise DataError(f"{where}: expected a conversation object")
      for key in ("conversation_id", "user_id", "conversation_history"):
        if key not in row:
          raise DataError(f"{where}: conversation has no {key!r}")
      history = row["conversation_history"]
      if not isinstance(history, list):
        raise DataError(f"{where}: conversation_history must be a list of utterances")
      for u in history:
        if not isinstance(u, dict) or not {"turn", "role", "content"} <= set(u):
          raise DataError(f"{where}: an utterance needs 'turn', 'role' and 'content'")
        if u["role"] == "model" and not isinstance(u.get("score"), (int, float)):
          raise DataError(f"{where}: a model utterance of turn {u['turn']} has no numeric score")
      out.append(row)
  return out


def conversation_pairs(row, turns: str = "first", min_gap: float = 0.0) -> list[PreferenceExample]:
  """The preference pairs of one conversation (see the module docstring)."""
  by_turn = {}
  for u in row["conversation_history"]:
    by_turn.setdefault(int(u["turn"]), []).append(u)
  context, out = [], []
  for t in sorted(by_turn):
    users = [u for u in by_turn[t] if u["role"] == "user"]
    models = [u for u in by_turn[t] if u["role"] == "model"]
    if not users or not models:
      break
    message = users[0]["content"]
    best = max(models, key=lambda u: (bool(u.get("if_chosen")), u["score"]))
    prompt = "\n".join(context + [f"User: {message}"]) if context else message
    for k, other in enumerate(models):
      if other is not best and best["score"] - other["score"] > min_gap:
        out.append(PreferenceExample(
            id=f"prism-{row['conversation_id']}-{t}-{k}", user_id=str(row["user_id"]),
            prompt=prompt, chosen=best["content"], rejected=other["content"]))
    if turns == "first":
      break
    context += [f"User: {message}", f"Assistant: {best['content']}"]
  return out


@dataset("prism-preferences", "user",
         "PRISM: each participant's rated responses as per-user preference pairs",
         split_kinds=("conversation", "user"))
def prism_preferences(path=None, data_dir=None, split="conversation", seed=0, turns="first",
                      min_gap=0.0, fractions=(0.8, 0.1, 0.1)) -> Task:
  """split "conversation": each conversation (with its pairs) in one split, so a user's other
  conversations train their parameters; "user": whole users in one split. turns: "first" (the
  opening turn, rated across four models) or "all"."""
  check_fractions(fractions)
  if split not in ("conversation", "user"):
    raise ConfigError(f"prism-preferences split must be 'conversation' or 'user', got {split!r}")
  if turns not in ("first", "all"):
    raise ConfigError(f"prism-preferences turns must be 'first' or 'all', got {turns!r}")
  rows = read_conversations(path if path is not None else data_root(data_dir) / _FILE)
  keys = sorted({str(r["conversation_id"] if split == "conversation" else r["user_id"])
                 for r in rows})
  random.Random(seed).shuffle(keys)
  a, b = cut(len(keys), fractions)
  split_of = {k: SPLITS[(i >= a) + (i >= b)] for i, k in enumerate(keys)}
  splits = {s: [] for s in SPLITS}
  for r in rows:
    key = str(r["conversation_id"] if split == "conversation" else r["user_id"])
    splits[split_of[key]].extend(conversation_pairs(r, turns, float(min_gap)))
  return Task("prism-preferences", "user", splits, ("preference_accuracy",), None, split,
              "PRISM per-user preference pairs")
