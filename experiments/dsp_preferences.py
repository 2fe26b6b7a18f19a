"""DSP preferences: a user of domain d (academy, business, entertainment, literature) prefers the
d-style response to a query over the other styles. DPO on per-group LoRA at user/persona
granularity is personalized DPO (P-DPO, Li et al. 2024); at global it is plain DPO (Rafailov et
al. 2023), one adapter for conflicting preferences. Metric: preference accuracy of the implicit
reward log p_policy - log p_base on held-out queries (zero_shot: the raw log-likelihood margin),
overall and per domain (`preference_accuracy/<domain>`).

Personalized Soups (`psoups`, Jang et al. 2023) trains one DPO adapter per domain (the domains
are its preference dimensions) and merges them per user (`methods.psoups.weights`; by default a
user's own domain, so it scores like dpo@user up to rounding; a user mixing domains is e.g.
`--config.methods.psoups.weights="{'academy': {'academy': 0.5, 'literature': 0.5}}"`).
`reward_model` is a per-user Bradley-Terry reward model (a head on LoRA-adapted hidden states),
scored by the accuracy of its reward; `--config.predict.mode=best_of_n` also reranks
`methods.reward_model.n` sampled responses per query.

In DSP a user *is* a domain, so user and persona granularity give the same 4 groups.

  perjax run experiments/dsp_preferences.py:method=dpo,granularity=user --workdir /tmp/dsp-dpo
  perjax sweep experiments/dsp_preferences.py --workdir /tmp/dsp
  perjax sweep experiments/dsp_preferences.py:smoke --workdir /tmp/dsp-smoke  # ~70 min, 2 idle CPUs
"""
from perjax.experiment.config import defaults, parse_arg


def parse(arg):
  """The `file.py:ARG` of this experiment, parsed; an unknown key is a ConfigError."""
  return parse_arg(arg, smoke=False, method="dpo", granularity="user",
                   model="smollm2-135m-instruct")


def get_config(arg=None):
  arg = parse(arg)
  c = defaults()
  c.model, c.method, c.granularity = arg.model, arg.method, arg.granularity
  c.data.name = "dsp-preferences"
  # held-out queries, every domain in every split; each d response is paired with all others
  c.data.params = dict(split="query", seed=0, rejected="others")
  c.methods.dpo.update(beta=0.1, rank=8)
  c.methods.psoups.update(beta=0.1, rank=8)
  c.methods.reward_model.update(rank=8, n=4, temperature=1.0)
  c.eval.max_new_tokens = 96  # best_of_n's sampled responses
  # median response ~150 tokens, 90th percentile ~300: longer ones are cut after the prompt
  c.train.update(steps=200, batch_size=8, seq_len=320, lr=1e-3, checkpoint_every=50)
  c.eval.update(batch_size=16)  # rows per scoring batch

  if arg.smoke:  # a CPU: 60 queries (48 train / 6 test), 48 test pairs, 48 steps of 4 pairs
    c.data.params.update(max_queries=60)
    c.data.max_train, c.data.max_test = 0, 48
    # Chosen on dev with SmolLM2 (docs/results.md, "DSP preferences"): 48 steps at 3e-3 for
    # per-group adapters; the sweep trains dpo@global at 1e-3, where its loss drifts less. The
    # first 128 tokens of prompt and response carry the style.
    c.train.update(steps=48, batch_size=4, seq_len=128, lr=3e-3, checkpoint_every=16)
    c.methods.dpo.rank = c.methods.psoups.rank = c.methods.reward_model.rank = 4
    c.eval.max_new_tokens = 32
  return c


def sweep(add, arg=None):
  add(method="zero_shot", granularity="global", seeds=1)  # nothing trained: no randomness
  # one adapter for conflicting preferences, at its own stable learning rate (see smoke)
  add(method="dpo", granularity="global", **{"train.lr": 1e-3})
  add(method="dpo", granularity="user")  # P-DPO: one adapter per domain
  # P-DPO with P-RLHF's user model (a user embedding): diverged at 3e-3; rate chosen on dev
  # (docs/results.md)
  add(method="pdpo", granularity="user", **{"train.lr": 3e-4})
  # with its default weights (each user's own domain, one-hot) the soup is dpo@user exactly, so
  # one seed checks that; mixed weights are a user's choice (methods.psoups.weights)
  add(method="psoups", granularity="user", seeds=1)
  # its rate chosen on dev (docs/results.md)
  add(method="reward_model", granularity="user", **{"train.lr": 1e-3})
  if not parse(arg).smoke:  # a global reward model scores symmetric preferences at chance
    add(method="reward_model", granularity="global")
