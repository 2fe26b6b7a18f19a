"""StudEmo: per-annotator emotion labels (PEFT-U style, Clarke et al. 2024). Each annotator is a
user; their labels for a text differ from other annotators'. A target is the set of emotions
they marked (", "-joined in StudEmo's order, "none" for none), answered by greedy text read as
the set it names (Task.label_sets). Metrics: exact-set accuracy and multi-label micro F1.

The split is "random": every annotator has annotations in train, dev and test, so `lora@user`
trains each annotator's own adapter on their train annotations and is scored on their test
ones; `lora@global` is one shared adapter trained on the same examples. The sweep's table adds
the trivial baselines (the global and each annotator's majority label set).

  perjax run experiments/studemo.py:method=lora,granularity=user --workdir /tmp/se-user
  perjax sweep experiments/studemo.py --workdir /tmp/se --seeds 3
  perjax sweep experiments/studemo.py:dev --workdir /tmp/se-dev     # settings chosen on dev
  perjax run experiments/studemo.py:smoke,model=tiny-llama --workdir /tmp/t
"""
from perjax.experiment.config import defaults, parse_arg


ARGS = dict(smoke=False, dev=False, method="zero_shot", granularity="user",
            model="smollm2-135m-instruct")


def get_config(arg=None):
  arg = parse_arg(arg, **ARGS)
  c = defaults()
  c.model, c.method, c.granularity = arg.model, arg.method, arg.granularity
  c.data.name = "studemo"
  # texts are cut to 200 characters (median 691): the 2-core CPU's step cost decides it; a
  # prompt then takes at most ~125 tokens with the target, inside seq_len
  c.data.params = dict(split="random", seed=0, max_chars=200)
  c.prompt.system = ("Which emotions does the reader feel about this text? Answer with the "
                     "emotions from this list, comma-separated, or none: {labels}.")
  c.prompt.suffix = "\nEmotions:"
  c.dtype = "bfloat16"
  c.methods.lora.rank = 8
  c.data.max_test = 250
  c.eval.split = "dev" if arg.dev else "test"
  c.train.update(steps=80, batch_size=8, seq_len=136, lr=1e-3, checkpoint_every=40)
  c.eval.update(batch_size=16, max_new_tokens=10)

  if arg.smoke:
    c.data.max_train, c.data.max_test = 32, 8
    c.train.update(steps=4, batch_size=4, checkpoint_every=2)
  return c


def sweep(add, arg=None):
  add(method="zero_shot", granularity="global", seeds=1)
  if parse_arg(arg, **ARGS).dev:  # the learning rate, chosen on dev (docs/results.md)
    for lr in (1e-3, 3e-3):
      for granularity in ("global", "user"):
        add(**{"method": "lora", "granularity": granularity, "train.lr": lr, "seeds": 1})
    return
  add(method="lora", granularity="global")
  add(method="lora", granularity="user")
