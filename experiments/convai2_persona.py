"""Persona conditioning on ConvAI2 (Persona-Chat), scored by the gold response's perplexity:
Zhang et al. 2018's central result is that conditioning on the speaker's persona lowers it.

Each ConvAI2 dialogue's speaker holds a persona (a few first-person facts). Personas are held
out whole (split "user"), so every test persona is new to training. The cells:

  zero_shot @global              no persona: the dialogue so far only
  persona_prompt @user           the persona's facts as a system message
  lora @user, own history        the persona's adapter, trained on its own facts (each fact a
                                 reply to "Tell me about yourself."), not in the prompt
  persona_prompt+lora @user      both

The metric is `gold_ppl`, the per-token perplexity of the real next utterance given the prompt
(and the persona's adapter); ROUGE-1/L and BLEU of a short greedy answer come beside it.

  perjax sweep experiments/convai2_persona.py --workdir /tmp/c2 --seeds 3
  perjax sweep experiments/convai2_persona.py:dev --workdir /tmp/c2-dev   # settings on dev
  perjax run experiments/convai2_persona.py:smoke,model=tiny-llama --workdir /tmp/t
"""
from perjax.experiment.config import defaults, parse_arg

ARGS = dict(smoke=False, dev=False, method="zero_shot", granularity="user",
            model="smollm2-135m-instruct")
OWN = {"train.on": "own_history"}


def get_config(arg=None):
  arg = parse_arg(arg, **ARGS)
  c = defaults()
  c.model, c.method, c.granularity = arg.model, arg.method, arg.granularity
  c.data.name = "persona-chat"
  c.data.params = dict(split="user", seed=0, sources=("convai2",), max_turns=4,
                       max_personas=300)
  c.prompt.system = ("The user is 'You' in the dialogue below. Write the user's next utterance, "
                     "replying to their partner: one or two short sentences, nothing else.")
  c.prompt.suffix = "\nYou:"
  c.dtype = "bfloat16"
  c.methods.lora.rank = 8
  c.data.max_test = 150
  c.eval.split = "dev" if arg.dev else "test"
  # seq_len: a fact pair with the persona in the system message takes up to ~140 tokens
  c.train.update(steps=30, batch_size=8, seq_len=160, lr=1e-3, checkpoint_every=15)
  c.eval.update(batch_size=16, max_new_tokens=16)

  if arg.smoke:
    c.data.params.max_personas = 40
    c.data.max_test = 8
    c.train.update(steps=4, batch_size=4, checkpoint_every=2)
    c.eval.update(max_new_tokens=8)
  return c


def sweep(add, arg=None):
  add(method="zero_shot", granularity="global", seeds=1)
  add(method="persona_prompt", granularity="user", seeds=1)
  if parse_arg(arg, **ARGS).dev:  # the own-history adapter's learning rate, chosen on dev
    for lr in (1e-3, 3e-3):
      add(**{"method": "lora", "granularity": "user", "train.lr": lr, "seeds": 1, **OWN})
    return
  add(method="lora", granularity="user", **OWN)
  add(method="persona_prompt+lora", granularity="user", **OWN)
