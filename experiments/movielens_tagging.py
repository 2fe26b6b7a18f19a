"""MovieLens tagging (LaMP-2 style): which of the frequent tags a user gives a movie.

Needs ml-latest-small in the shared data folder (PERJAX_DATA, default ../shared/data/movielens).

  perjax run experiments/movielens_tagging.py:method=rag,granularity=user --workdir /tmp/mlt-rag
  perjax sweep experiments/movielens_tagging.py --workdir /tmp/mlt
  perjax sweep experiments/movielens_tagging.py:smoke --workdir /tmp/mlt-smoke
"""
from perjax.experiment.config import defaults, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, method="zero_shot", granularity="user",
                  model="smollm2-135m-instruct")
  c = defaults()
  c.model, c.method, c.granularity = arg.model, arg.method, arg.granularity
  c.data.name = "movielens-tagging"
  c.data.params = dict(split="time", seed=0, n_tags=10, max_profile=32)
  c.prompt.system = "You tag movies for a user. Answer with one tag from: {labels}."
  c.prompt.suffix = "\nWhich tag does this user give this movie?\ntag:"
  c.rag.k = 4
  c.lora.rank = 8
  c.persona.use_labels = False  # no persona labels: cluster users' profiles
  c.persona.clusters = 8
  c.train.update(steps=300, batch_size=8, seq_len=128, lr=1e-3, checkpoint_every=100)
  c.eval.update(batch_size=32, max_new_tokens=8)
  c.data.max_test = 500

  if arg.smoke:
    c.data.max_train, c.data.max_test = 64, 32
    c.persona.clusters = 3
    c.train.update(steps=8, batch_size=4, seq_len=96, checkpoint_every=4)
  return c


def sweep(add):
  add(method="zero_shot", granularity="global")
  for method in ("rag", "soft_prompt", "lora"):
    for granularity in ("user", "persona", "global"):
      add(method=method, granularity=granularity)
  add(method="rag+lora", granularity="user")  # OPPU
