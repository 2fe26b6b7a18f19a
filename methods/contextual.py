"""Contextual prompting (survey 4.2): the most recent items of the example's pool, newest first,
as many as fit `budget_tokens`, listed before the input. No retrieval: the context is what
happened last, not what matches the input.

Tokens are counted with the run's tokenizer (an estimate of 3 characters a token outside a run);
the budget bounds the whole inserted block, header included. Which items are "most recent" is
the pool's order (`perjax.profile_text`).
"""
from perjax.errors import ConfigError
from perjax.method import Method, register
from perjax.profile_text import newest_within
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique


def prompt(examples, prompts, ctx):
  budget = int(ctx.options["budget_tokens"])
  if budget < 1:
    raise ConfigError(f"methods.contextual.budget_tokens must be >= 1, got {budget}")
  out = []
  for example, text in zip(examples, prompts):
    block, _ = newest_within(ctx.pool(example), ctx.pool_header(example), budget, ctx.tokens)
    out.append(f"{block}\n\n{text}" if block else text)
  return out


CONTEXTUAL = register(Method(
    MethodInfo("contextual", Technique.PROMPTING, tuple(Granularity), "4.2",
               "contextual prompting: the most recent history within a token budget"),
    prompt=prompt, defaults={"budget_tokens": 256}))
