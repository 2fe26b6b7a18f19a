"""Prompt rewriting (Li et al. 2024, "Learning to rewrite prompts for personalized text
generation"): the run's model rewrites the input in light of the user's profile (its summary,
or the items retrieved for the input), and the rewrite is what the answering model sees.

Li et al. train the rewriter; here the rewriter is the run's model, and what is learned is the
choice among candidate rewrite `instructions`: each rewrites `dev_examples` examples drawn from
the dev split (the training split where the evaluated split is dev, or there is none), the model
answers them, and the instruction with the best primary metric is used (the first on ties). The
choice and every candidate's dev score go into DIR/prompting.json (`rewrite_instruction` is also
in metrics.json). With `keep_input` the original input follows the rewrite, so a rewrite that
drops part of the request loses nothing. Rewrites and summaries are cached on disk
(`cache_dir`), keyed by the model and everything the model was shown; a rerun only answers the
dev examples again to choose.
"""
import numpy as np

from perjax.errors import ConfigError
from perjax.method import Method, register
from perjax.profile_summary import DEFAULT_TEMPLATE, needs_model, summarize
from perjax.profile_text import render
from perjax.prompting import Prompt
from perjax.registry import MethodInfo
from perjax.retrieval import retrieve
from perjax.taxonomy import Granularity, Technique
from perjax.text_cache import TextCache, key_of

TEMPLATE = "{instruction}\n\n{context}\n\nRequest:\n{input}\n\nWrite only the rewritten request."
INSTRUCTIONS = (
    "Rewrite the request below so that it asks for an answer suited to this particular user, "
    "using what their profile shows. Keep every detail of the request.",
    "Add to the request below the facts from the user's profile that matter for answering it. "
    "Keep the request itself.",
    "Rewrite the request below in the user's own words, as they would ask it given their "
    "profile.",
)
CONTEXTS = ("summary", "retrieved")


def contexts(examples, ctx) -> list[str]:
  """What the rewriter is shown about each example's user ("" where the pool shows nothing)."""
  o = ctx.options
  if o["context"] == "summary":
    summaries = summarize(examples, ctx, method="rewrite", template=DEFAULT_TEMPLATE,
                          budget=int(o["profile_tokens"]), max_new_tokens=int(o["summary_tokens"]),
                          cache_dir=o["cache_dir"])
    return [f"Summary of the user's profile: {s}" if s else "" for s in summaries]
  retrieved = retrieve(examples, o["retriever"], int(o["k"]), pools=ctx.pools)
  return [f"{ctx.pool_header(e)}:\n" + "\n".join(f"- {render(it)}" for it in items)
          if items else "" for e, items in zip(examples, retrieved)]


def rewrite(examples, texts, ctx, instruction: str) -> list[str]:
  """Each text rewritten by the model (the text itself where there is no context)."""
  o = ctx.options
  n = int(o["rewrite_tokens"])
  blocks = contexts(examples, ctx)
  todo = [i for i, b in enumerate(blocks) if b]
  prompts = [TEMPLATE.format(instruction=instruction, context=blocks[i], input=texts[i])
             for i in todo]
  keys = [key_of("rewrite", ctx.model, n, p) for p in prompts]
  rewritten, generated = TextCache(o["cache_dir"]).generate(
      keys, prompts, lambda batch: ctx.generate(batch, n))
  ctx.note("rewrites_generated", generated, add=True)
  out = list(texts)
  for i, r in zip(todo, rewritten):
    if r:
      out[i] = f"{r}\n\n{texts[i]}" if o["keep_input"] else r
  return out


def choose(ctx, instructions) -> tuple[int, list[float]]:
  """(index of the instruction to use, each one's dev score)."""
  if len(instructions) == 1:
    return 0, []
  if ctx.score is None or not ctx.dev:
    raise ConfigError("rewrite chooses its instruction on dev examples with text targets; "
                      "this run has none (a preference task?); give one instruction")
  if ctx.notes and len(ctx.notes.get("rewrite_dev_scores", ())) == len(instructions):
    scores = ctx.notes["rewrite_dev_scores"]  # chosen already in this run (another stage)
  else:
    pick = np.random.default_rng(ctx.seed).permutation(len(ctx.dev))
    dev = [ctx.dev[i] for i in sorted(pick[:int(ctx.options["dev_examples"])])]
    scores = [ctx.score(dev, [Prompt(t, ctx.system)
                              for t in rewrite(dev, [e.input for e in dev], ctx, instruction)])
              for instruction in instructions]
  return int(np.argmax(scores)), scores


def prompt(examples, prompts, ctx):
  needs_model(ctx, "rewrite")
  o = ctx.options
  if o["context"] not in CONTEXTS:
    raise ConfigError(f"methods.rewrite.context must be one of {CONTEXTS}, got {o['context']!r}")
  instructions = tuple(o["instructions"])
  if not instructions:
    raise ConfigError("methods.rewrite.instructions is empty; give at least one")
  best, scores = choose(ctx, instructions)
  ctx.note("rewrite_instruction", best)
  ctx.note("rewrite_instruction_text", instructions[best])
  ctx.note("rewrite_dev_scores", scores)
  return rewrite(examples, list(prompts), ctx, instructions[best])


REWRITE = register(Method(
    MethodInfo("rewrite", Technique.PROMPTING, tuple(Granularity), "4.2",
               "prompt rewriting (Li et al. 2024), the instruction chosen on dev"),
    prompt=prompt,
    defaults={"context": "summary", "instructions": INSTRUCTIONS, "dev_examples": 8,
              "k": 4, "retriever": "bm25", "profile_tokens": 384, "summary_tokens": 64,
              "rewrite_tokens": 64, "keep_input": True, "cache_dir": ""}))
