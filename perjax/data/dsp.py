"""Domain-Specific Preference (DSP): for each query, five responses written for the domains
academy, business, entertainment, literature and normal. A user of domain d prefers the d response
over the others (the Personalized-Soups / P-DPO reading); persona_id = user_id = d.
"""
import random

from perjax.data.catalog import dataset
from perjax.data.files import data_root, read_json
from perjax.data.preference_pairs import dimension_pairs
from perjax.data.schema import Task
from perjax.data.splits import SPLITS, cut, check_fractions
from perjax.errors import ConfigError, DataError

DOMAINS = ("academy", "business", "entertainment", "literature")
_FILE = "domain_specific_preference.test.json"


@dataset("dsp-preferences", "persona",
         "preference pairs: a user of domain d prefers the d-style response to the same query",
         split_kinds=("query", "user"))
def dsp_preferences(data_dir=None, split="query", seed=0, domains=DOMAINS, rejected="others",
                    max_queries=None, fractions=(0.8, 0.1, 0.1)) -> Task:
  """split "query": each query (with all its pairs) in one split; "user": each domain in one split.
  rejected: "others" pairs the d response with every other response, "normal" only with the
  domain-neutral one."""
  check_fractions(fractions)
  if rejected not in ("others", "normal"):
    raise ConfigError(f"rejected must be 'others' or 'normal', got {rejected!r}")
  path = data_root(data_dir) / "dsp" / _FILE
  data = read_json(path)
  if not isinstance(data, list):
    raise DataError(f"{path}: expected a list of {{query, responses}}")
  order = list(range(len(data)))
  random.Random(seed).shuffle(order)
  if max_queries is not None:
    order = order[:max_queries]
  a, b = cut(len(order), fractions)
  query_split = {q: SPLITS[(i >= a) + (i >= b)] for i, q in enumerate(order)}
  doms = list(domains)
  random.Random(seed).shuffle(doms)
  da, db = cut(len(doms), fractions)
  domain_split = {d: SPLITS[(i >= da) + (i >= db)] for i, d in enumerate(doms)}
  splits = {s: [] for s in SPLITS}
  for q in sorted(order):
    row = data[q]
    if not isinstance(row, dict) or "query" not in row or not isinstance(row.get("responses"), dict):
      raise DataError(f"{path}: entry {q} must have 'query' and a 'responses' object")
    # the domains are the preference dimensions (P-Soups style): one user / persona each
    for ex in dimension_pairs(f"dsp-{q}", row["query"], row["responses"], domains,
                              "neutral" if rejected == "normal" else "others", "normal",
                              where=f"{path}: "):
      splits[query_split[q] if split == "query" else domain_split[ex.user_id]].append(ex)
  return Task("dsp-preferences", "persona", splits, ("preference_accuracy",), None, split,
              f"DSP preference pairs for domains {', '.join(domains)}")
