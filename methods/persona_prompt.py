"""Persona prompting (survey 4.2): a system message describing the user, or the user's persona.

Where the pool holds persona facts (items with a `fact_field`, as persona-chat's do), the
message lists them. Otherwise it describes the pool's profile by its most frequent labels and
attributes: the commonest values of each short, repeating field (a rating, a tag, a choice),
else the commonest content words. The config's system message, if any, comes first.
"""
import collections
import re

from perjax.method import Method, register
from perjax.prompting import Prompt
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique

_WORD = re.compile(r"[a-z][a-z'-]{3,}")
_COMMON = frozenset("""about above after again against also because been before being below
between both could does doing down during each from further have having here into itself more
most other over same should some such than that their theirs them then there these they this
those through under until very were what when where which while will with would your yours
just only like""".split())
MAX_LABEL_WORDS = 4  # a longer value is free text (a title, a review), not a label


def _field_counts(items) -> dict[str, collections.Counter]:
  """field -> value counts, for the fields whose values look like labels: short, and at least
  one of them repeating."""
  counts: dict[str, collections.Counter] = {}
  for it in items:
    for k, v in it.fields.items():
      if v:
        counts.setdefault(k, collections.Counter())[str(v).strip()] += 1
  return {k: c for k, c in counts.items()
          if max(c.values()) > 1 and all(len(v.split()) <= MAX_LABEL_WORDS for v in c)}


def describe_profile(items, top: int) -> list[str]:
  """Lines naming the most frequent values of each label-like field, else the most frequent
  content words."""
  fields = _field_counts(items)
  if fields:
    return [f"{k}: " + ", ".join(f"{v} ({n})" for v, n in c.most_common(top))
            for k, c in fields.items()]
  words = collections.Counter(w for it in items for w in _WORD.findall(it.text.lower())
                              if w not in _COMMON)
  return ["frequent words: " + ", ".join(w for w, _ in words.most_common(3 * top))] if words \
      else []


def describe(items, header: str, fact_field: str, top: int, max_facts: int) -> str:
  where = header[0].lower() + header[1:]
  facts = [it.fields[fact_field] for it in items if it.fields.get(fact_field)]
  if facts and len(facts) == len(items):
    facts = list(dict.fromkeys(facts))[:max_facts]  # a persona pool repeats its members' facts
    return f"Facts about the user ({where}):\n" + "\n".join(f"- {f}" for f in facts)
  lines = describe_profile(items, top)
  if not lines:
    return ""
  return (f"The user's profile ({where}, {len(items)} items), most frequent values:\n" +
          "\n".join(f"- {l}" for l in lines))


def prompt(examples, prompts, ctx):
  o = ctx.options
  out = []
  for example, text in zip(examples, prompts):
    about = describe(ctx.pool(example), ctx.pool_header(example), o["fact_field"],
                     int(o["top_values"]), int(o["max_facts"]))
    out.append(Prompt(text, system="\n\n".join(filter(None, [ctx.system, about]))) if about
               else text)
  return out


PERSONA_PROMPT = register(Method(
    MethodInfo("persona_prompt", Technique.PROMPTING, (Granularity.USER, Granularity.PERSONA),
               "4.2", "persona prompting: a system message describing the user or persona"),
    prompt=prompt, defaults={"fact_field": "fact", "top_values": 3, "max_facts": 20}))
