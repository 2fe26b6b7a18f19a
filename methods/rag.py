"""Retrieval-augmented prompting (LaMP): the top-k items of the example's pool, listed before
the input under a header saying what the pool holds. The granularity decides the pool: the
user's own profile (user), the pooled profiles of the user's persona (persona), or everyone's
(global); the no-leak rule hides the user's own items outside the example's profile."""
from perjax.method import Method, register
from perjax.registry import MethodInfo
from perjax.retrieval import retrieve
from perjax.taxonomy import Granularity, Technique


def render(item) -> str:
  return ", ".join(f"{k}: {v}" for k, v in item.fields.items() if v)


def prompt(examples, prompts, ctx):
  name = ctx.options["retriever"]
  extra = {"encoder": ctx.encoder()} if name == "dense" else (
      {"seed": ctx.seed} if name == "random" else {})
  retrieved = retrieve(examples, name, int(ctx.options["k"]), pools=ctx.pools, **extra)
  out = []
  for example, text, items in zip(examples, prompts, retrieved):
    if items:
      listing = "\n".join(f"- {render(it)}" for it in items)
      text = f"{ctx.pool_header(example)}:\n{listing}\n\n{text}"
    out.append(text)
  return out


RAG = register(Method(
    MethodInfo("rag", Technique.PROMPTING, tuple(Granularity), "4.2.1",
               "LaMP (Salemi et al. 2023), retrieval-augmented prompts"),
    prompt=prompt, defaults={"retriever": "bm25", "k": 4}))
