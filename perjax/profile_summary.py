"""Profile summaries written by the run's model (profile-augmented generation, Richardson et
al. 2023): one per distinct pool content an example sees, cached on disk.

The model is shown the newest items of the example's pool that fit `budget` tokens, in
`template` (`{profile}` marks where they go). A summary is keyed by (model, template, answer
length, the profile text shown), so examples that see the same items share one, and a rerun
with the same model and data generates none. `summaries_generated` in the run's metrics counts
the ones actually generated.
"""
from perjax.errors import ConfigError
from perjax.profile_text import newest_within
from perjax.text_cache import TextCache, key_of

DEFAULT_TEMPLATE = ("Below are past items of a user. In two or three sentences, summarize what "
                    "they show about this user's interests, preferences and style.\n\n"
                    "{profile}")


def needs_model(ctx, method: str):
  if ctx.generate is None:
    raise ConfigError(f"method {method!r} has the model write part of its prompt; its context "
                      "has no model (run it with `perjax run`)")


def summarize(examples, ctx, *, method: str, template: str, budget: int, max_new_tokens: int,
              cache_dir: str = "") -> list[str]:
  """Each example's profile summary ("" where its pool shows it nothing)."""
  needs_model(ctx, method)
  if "{profile}" not in template:
    raise ConfigError(f"methods.{method}.template must contain {{profile}}, got {template!r}")
  blocks = [newest_within(ctx.pool(e), ctx.pool_header(e), budget, ctx.tokens)[0]
            for e in examples]
  wanted = [i for i, b in enumerate(blocks) if b]
  prompts = [template.replace("{profile}", blocks[i]) for i in wanted]
  keys = [key_of("profile-summary", ctx.model, template, max_new_tokens, blocks[i])
          for i in wanted]
  texts, generated = TextCache(cache_dir).generate(
      keys, prompts, lambda todo: ctx.generate(todo, max_new_tokens))
  ctx.note("summaries_generated", generated, add=True)
  out = [""] * len(examples)
  for i, t in zip(wanted, texts):
    out[i] = t
  return out
