"""Preference pairs per dimension, Personalized-Soups style (Jang et al. 2023): a query answered
in several styles; for preference dimension d the d-style response is preferred over each other
style's (or over a neutral one only). Each dimension is a user and a persona of its own, so one
adapter per dimension trains on exactly that dimension's pairs (`methods/psoups.py`).
"""
from typing import Mapping, Sequence

from perjax.data.schema import PreferenceExample
from perjax.errors import DataError


def dimension_pairs(query_id: str, prompt: str, responses: Mapping[str, str],
                    dimensions: Sequence[str], rejected: str = "others",
                    neutral: str = "normal", where: str = "") -> list[PreferenceExample]:
  """The pairs of one query: for each dimension d, (d's response, another response), with
  user_id = persona_id = d. `rejected`: "others" (every other response) or "neutral" (only the
  `neutral` style's). Identical responses carry no preference and give no pair."""
  out = []
  for d in dimensions:
    if d not in responses:
      raise DataError(f"{where}query {query_id} has no {d!r} response")
    others = [neutral] if rejected == "neutral" else sorted(k for k in responses if k != d)
    for o in others:
      if o not in responses:
        raise DataError(f"{where}query {query_id} has no {o!r} response")
      if responses[o].strip() == responses[d].strip():
        continue
      out.append(PreferenceExample(id=f"{query_id}-{d}-{o}", user_id=d, prompt=prompt,
                                   chosen=responses[d], rejected=responses[o], persona_id=d))
  return out
