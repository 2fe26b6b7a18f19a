"""Preference data: P-Soups-style pairs per dimension, and the PRISM conversation loader on a
hand-written fixture in PRISM's published schema (malformed files are one-line DataErrors)."""
import json
from pathlib import Path

import pytest

from perjax.data import load_dataset
from perjax.data.preference_pairs import dimension_pairs
from perjax.data.prism import conversation_pairs, read_conversations
from perjax.errors import ConfigError, DataError

FIXTURE = Path(__file__).parent / "fixtures" / "prism_conversations.jsonl"


def test_dimension_pairs_prefer_the_dimension_style():
  responses = {"academy": "A", "business": "B", "literature": "L", "normal": "N", "copy": "A "}
  pairs = dimension_pairs("q1", "why?", responses, ["academy", "business"])
  academy = [p for p in pairs if p.user_id == "academy"]
  # every other style, except the identical "copy" (no preference between equal texts)
  assert sorted(p.rejected for p in academy) == ["B", "L", "N"]
  assert all(p.chosen == "A" and p.persona_id == "academy" and p.prompt == "why?"
             for p in academy)
  assert len({p.id for p in pairs}) == len(pairs)
  neutral = dimension_pairs("q1", "why?", responses, ["business"], rejected="neutral")
  assert [(p.chosen, p.rejected) for p in neutral] == [("B", "N")]
  with pytest.raises(DataError, match="no 'science' response"):
    dimension_pairs("q1", "why?", responses, ["science"])


def test_prism_pairs_chosen_over_lower_rated():
  rows = read_conversations(FIXTURE)
  first = conversation_pairs(rows[0])
  # the chosen response (85, if_chosen) over the ones rated lower; the tie at 85 gives no pair
  assert [(p.chosen, p.rejected) for p in first] == [
      ("Try hiking in a nearby park.", "Watch television."),
      ("Try hiking in a nearby park.", "Gardening is relaxing.")]
  assert first[0].prompt == "Suggest a weekend hobby." and first[0].user_id == "user1"
  both = conversation_pairs(rows[0], turns="all")
  later = [p for p in both if p.chosen == "Board games with friends."]
  assert len(later) == 1 and later[0].prompt == (
      "User: Suggest a weekend hobby.\nAssistant: Try hiking in a nearby park.\n"
      "User: Something indoors?")
  assert len(conversation_pairs(rows[2], min_gap=5)) == 1  # 55 vs 54 is within the gap


def test_prism_dataset_splits(tmp_path):
  task = load_dataset("prism-preferences", path=str(FIXTURE), split="user", seed=0)
  users = {s: {e.user_id for e in task.splits[s]} for s in task.splits}
  assert sum(len(v) for v in users.values()) == 3  # each user in exactly one split
  assert sum(len(v) for v in task.splits.values()) == 6
  by_conv = load_dataset("prism-preferences", path=str(FIXTURE), split="conversation")
  assert sum(len(v) for v in by_conv.splits.values()) == 6
  with pytest.raises(ConfigError, match="split"):
    load_dataset("prism-preferences", path=str(FIXTURE), split="time")


@pytest.mark.parametrize("line, match", [
    ("{not json", r":2: malformed JSON"),
    ('["a list"]', r":2: expected a conversation object"),
    ('{"conversation_id": "x", "user_id": "u"}', r":2: conversation has no 'conversation_history'"),
    ('{"conversation_id": "x", "user_id": "u", "conversation_history": '
     '[{"turn": 0, "role": "model", "content": "hi"}]}', r":2: a model utterance .* no numeric"),
])
def test_malformed_prism_files_are_one_line_errors(tmp_path, line, match):
  path = tmp_path / "conversations.jsonl"
  path.write_text(FIXTURE.read_text().splitlines()[0] + "\n" + line + "\n")
  with pytest.raises(DataError, match=match) as e:
    load_dataset("prism-preferences", path=str(path))
  assert "\n" not in str(e.value)
  with pytest.raises(DataError, match="not found|no such|missing"):
    read_conversations(tmp_path / "absent.jsonl")
