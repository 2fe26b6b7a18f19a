"""Retrieval-augmented prompting (LaMP): the top-k items of the example's pool, listed before
the input under a header saying what the pool holds. The granularity decides the pool: the
user's own profile (user), the pooled profiles of the user's persona (persona), or everyone's
(global); the no-leak rule hides the user's own items outside the example's profile. Where
the task has them (LaMP), the query is the input's own text and items read as the task's
template (perjax.data.lamp_prompts); `budget_tokens` caps the listing's length."""
from perjax.method import Method, register
from perjax.registry import MethodInfo
from perjax.retrieval import retrieve
from perjax.taxonomy import Granularity, Technique


def render(item) -> str:
  return ", ".join(f"{k}: {v}" for k, v in item.fields.items() if v)


def within_budget(lines, budget: int, count) -> list[str]:
  """The best-first `lines` while their total stays within `budget` tokens (0: all of them)."""
  if budget <= 0:
    return list(lines)
  kept, used = [], 0
  for line in lines:
    used += count(line)
    if used > budget:
      break
    kept.append(line)
  return kept


def prompt(examples, prompts, ctx):
  name = ctx.options["retriever"]
  extra = {"encoder": ctx.encoder()} if name == "dense" else (
      {"seed": ctx.seed} if name == "random" else {})
  # the task's query (LaMP: the input's own text, not its instruction) and item template
  retrieved = retrieve(examples, name, int(ctx.options["k"]), pools=ctx.pools,
                       query_text=ctx.query, **extra)
  show = ctx.item_text or render
  budget = int(ctx.options.get("budget_tokens", 0))
  out = []
  for example, text, items in zip(examples, prompts, retrieved):
    lines = within_budget([f"- {show(it)}" for it in items], budget, ctx.tokens)
    if lines:
      text = f"{ctx.pool_header(example)}:\n" + "\n".join(lines) + f"\n\n{text}"
    out.append(text)
  return out


RAG = register(Method(
    MethodInfo("rag", Technique.PROMPTING, tuple(Granularity), "4.2.1",
               "LaMP (Salemi et al. 2023), retrieval-augmented prompts"),
    # budget_tokens: the retrieved items stop where they would pass it (0: no budget)
    prompt=prompt, defaults={"retriever": "bm25", "k": 4, "budget_tokens": 0}))
