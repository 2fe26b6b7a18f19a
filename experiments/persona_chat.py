"""Persona-conditioned dialogue (Synthetic-Persona-Chat + ConvAI2): the speaker's next utterance
given the dialogue so far, scored by ROUGE-1, ROUGE-L and BLEU against the real one.

Each persona's facts are its speaker's profile, and the speaker is the persona (user_id equals
persona_id), so `user` and `persona` granularity see the same pools and groups; the sweep runs
`user` and `global` (everyone's facts, the speaker's own among them).

  perjax run experiments/persona_chat.py:method=persona_prompt --workdir /tmp/pc-persona
  perjax sweep experiments/persona_chat.py --workdir /tmp/pc
  perjax sweep experiments/persona_chat.py:smoke --workdir /tmp/pc-smoke   # minutes on 2 CPUs
  perjax run experiments/persona_chat.py:smoke,model=tiny-llama --workdir /tmp/t
"""
from perjax.experiment.config import defaults, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, method="zero_shot", granularity="user",
                  model="smollm2-135m-instruct")
  c = defaults()
  c.model, c.method, c.granularity = arg.model, arg.method, arg.granularity
  c.data.name = "persona-chat"
  c.data.params = dict(split="user", seed=0, max_turns=4, max_personas=300)
  c.prompt.system = ("The user is 'You' in the dialogue below. Write the user's next utterance, "
                     "replying to their partner: one or two short sentences, nothing else.")
  c.prompt.suffix = "\nYou:"
  c.methods.rag.update(retriever="bm25", k=3)
  c.methods.contextual.budget_tokens = 96  # a persona has about five facts: room for them all
  c.methods.pag.update(profile_tokens=256, summary_tokens=48)
  c.data.max_train, c.data.max_test = 2000, 200
  c.train.update(steps=200, batch_size=8, seq_len=192, lr=1e-3, checkpoint_every=100)
  c.eval.update(batch_size=16, max_new_tokens=32)

  if arg.smoke:  # a CPU: 16 test turns of 6 speakers
    c.data.params.max_personas = 60
    c.data.max_train, c.data.max_test = 64, 16
    c.train.update(steps=8, batch_size=4, seq_len=160, lr=1e-2, checkpoint_every=4)
    c.eval.update(batch_size=16, max_new_tokens=24)
  return c


def sweep(add):
  add(method="zero_shot", granularity="global", seeds=1)
  for method in ("rag", "contextual", "pag"):
    for granularity in ("user", "global"):  # persona: the same pools and groups as user
      add(method=method, granularity=granularity, seeds=1)
  add(method="persona_prompt", granularity="user", seeds=1)
  for method, granularities in (("user_encoder", ("user", "global")), ("user_model", ("user",))):
    for granularity in granularities:  # embedding methods (trained)
      add(method=method, granularity=granularity)
