"""Quickstart: every technique at every granularity on the embedded synthetic task, SmolLM2-135M.

Users belong to personas; a user's pick for a topic follows the persona's favourite unless the
user overrides it, and the profile lists the user's past picks. So the user's own data (retrieved
into the prompt, or trained into per-user parameters) should beat the non-personalized baseline.

  perjax run experiments/quickstart.py:method=rag,granularity=user --workdir /tmp/qs-rag
  perjax sweep experiments/quickstart.py --workdir /tmp/qs
  perjax sweep experiments/quickstart.py:smoke --workdir /tmp/qs-smoke   # minutes on 2 CPU cores
  perjax run experiments/quickstart.py:smoke,model=tiny-llama --workdir /tmp/t  # tests
"""
from perjax.experiment.config import defaults, parse_arg
from perjax.experiment.sweep import taxonomy_grid
from perjax.registry import METHODS, load_plugins
from perjax.taxonomy import Technique


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, method="zero_shot", granularity="user",
                  model="smollm2-135m-instruct")
  c = defaults()
  c.model, c.method, c.granularity = arg.model, arg.method, arg.granularity
  c.data.name = "synthetic"
  c.data.params = dict(split="time", seed=0, n_personas=4, users_per_persona=4,
                       examples_per_user=24, profile_size=24, n_topics=4, n_options=3,
                       override_prob=0.4)
  # A cue right after the question, so the small model names an option rather than chatting.
  c.prompt.system = "Answer with one of the options."
  c.prompt.suffix = "\nchoice:"
  # Dense retrieval: the question lists every option, and BM25 weighs those words like the
  # topic, so it retrieves the same-topic picks less often than MiniLM does.
  c.methods.rag.update(retriever="dense", k=4)
  # Contextual prompting gets as much history as rag's k=4 (about 16 tokens an item): recency
  # against retrieval.
  c.methods.contextual.budget_tokens = 80
  c.methods.soft_prompt.length = 8
  c.methods.lora.rank = 4
  c.train.update(steps=200, batch_size=8, seq_len=96, lr=3e-3, checkpoint_every=50)
  # Enough tokens for "The user's answer is red." so the baseline is not cut off mid-answer.
  c.eval.update(batch_size=32, max_new_tokens=8)

  if arg.smoke:  # everything small enough for a CPU: the whole sweep in minutes
    c.data.params.update(n_personas=2, users_per_persona=2)  # 4 users, 24 test examples
    c.data.max_test = 24
    # Few steps need a larger learning rate to move the zero-initialised adapters.
    c.train.update(steps=16, batch_size=4, seq_len=80, lr=1e-2, checkpoint_every=8)
    # the model writes summaries and rewrites: shorter ones, and fewer dev examples to choose on
    c.methods.pag.summary_tokens = 48
    c.methods.rewrite.update(dev_examples=4, summary_tokens=48, rewrite_tokens=32)
  return c


def sweep(add):
  taxonomy_grid(add, methods=("rag", "soft_prompt", "lora"))  # zero_shot, then each method x granularity
  # the other embedding cells: a shared history encoder, P-RLHF's user model (clusters at persona)
  taxonomy_grid(add, methods=("user_encoder",), baseline=None)
  add(method="user_model", granularity="user")
  add(method="user_model", granularity="persona", **{"methods.user_model.kind": "cluster"})
  load_plugins()
  for name, method in METHODS.items():  # every other prompting method, at each granularity it has
    if method.info.technique == Technique.PROMPTING and name not in ("zero_shot", "rag"):
      for granularity in method.info.granularities:
        add(method=name, granularity=granularity.value)
