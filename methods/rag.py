"""Retrieval-augmented prompting (LaMP): the top-k profile items of the granularity's pool,
listed before the input. The pool is the user's own profile (user), the pooled profiles of the
user's persona (persona), or everyone's (global)."""
from perjax.method import Method, register
from perjax.registry import MethodInfo
from perjax.retrieval import retrieve
from perjax.taxonomy import Granularity, Technique

_HEADERS = {Granularity.USER: "Past items of this user",
            Granularity.PERSONA: "Past items of users like this one",
            Granularity.GLOBAL: "Past items of other users"}


def render(item) -> str:
  return ", ".join(f"{k}: {v}" for k, v in item.fields.items() if v)


def prompt(examples, prompts, ctx):
  name = ctx.options["retriever"]
  extra = {"encoder": ctx.encoder()} if name == "dense" else (
      {"seed": ctx.seed} if name == "random" else {})
  retrieved = retrieve(examples, pool_by=ctx.pool_by, retriever=name, k=int(ctx.options["k"]),
                       persona_of=ctx.persona_of, **extra)
  out = []
  for text, items in zip(prompts, retrieved):
    if items:
      listing = "\n".join(f"- {render(it)}" for it in items)
      text = f"{_HEADERS[ctx.pool_by]}:\n{listing}\n\n{text}"
    out.append(text)
  return out


RAG = register(Method(
    MethodInfo("rag", Technique.PROMPTING, tuple(Granularity), "4.2.1",
               "LaMP (Salemi et al. 2023), retrieval-augmented prompts"),
    prompt=prompt, defaults={"retriever": "bm25", "k": 4}))
