"""Profile-augmented generation (Richardson et al. 2023, "Integrating summarization and
retrieval for enhanced personalization via large language models"): the run's model summarizes
the profile the example's pool shows it, and the summary is placed before the input.

Summaries are cached on disk (`perjax.profile_summary`; `cache_dir`, default under the perjax
cache), so a rerun generates none; the run's metrics.json reports `summaries_generated`.
"""
from perjax.method import Method, register
from perjax.profile_summary import DEFAULT_TEMPLATE, summarize
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique


def prompt(examples, prompts, ctx):
  o = ctx.options
  summaries = summarize(examples, ctx, method="pag", template=o["template"],
                        budget=int(o["profile_tokens"]), max_new_tokens=int(o["summary_tokens"]),
                        cache_dir=o["cache_dir"])
  out = []
  for example, text, summary in zip(examples, prompts, summaries):
    header = ctx.pool_header(example)  # "Past items of this user" -> "Summary of past items..."
    out.append(f"Summary of {header[:1].lower()}{header[1:]}: {summary}\n\n{text}" if summary
               else text)
  return out


PAG = register(Method(
    MethodInfo("pag", Technique.PROMPTING, tuple(Granularity), "4.2",
               "PAG (Richardson et al. 2023), profile summaries written by the model"),
    prompt=prompt,
    defaults={"template": DEFAULT_TEMPLATE, "profile_tokens": 384, "summary_tokens": 64,
              "cache_dir": ""}))
