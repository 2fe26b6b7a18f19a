"""MovieLens rating (LaMP-3 style): the 1-5 stars a user gives a movie; MAE / RMSE.

Needs ml-latest-small in the shared data folder (PERJAX_DATA, default ../shared/data/movielens).

  perjax run experiments/movielens_rating.py:method=rag,granularity=user --workdir /tmp/mlr-rag
  perjax sweep experiments/movielens_rating.py --workdir /tmp/mlr
  perjax sweep experiments/movielens_rating.py:smoke --workdir /tmp/mlr-smoke
"""
from perjax.experiment.config import defaults, parse_arg
from perjax.experiment.sweep import taxonomy_grid


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, method="zero_shot", granularity="user",
                  model="smollm2-135m-instruct")
  c = defaults()
  c.model, c.method, c.granularity = arg.model, arg.method, arg.granularity
  c.data.name = "movielens-rating"
  c.data.params = dict(split="time", seed=0, max_users=100, max_ratings_per_user=60,
                       max_profile=32)
  c.prompt.system = "You predict a user's movie ratings. Answer with one number from 1 to 5."
  c.prompt.suffix = "\nHow many stars (1-5) does this user give this movie?\nstars:"
  c.methods.rag.k = 6
  c.granularities.persona.use_labels = False
  c.granularities.persona.clusters = 8
  c.train.update(steps=300, batch_size=8, seq_len=128, lr=1e-3, checkpoint_every=100)
  c.eval.update(batch_size=32, max_new_tokens=4)
  c.data.max_test = 500

  if arg.smoke:
    c.data.params.update(max_users=8, max_ratings_per_user=24)
    c.data.max_train, c.data.max_test = 64, 32
    c.granularities.persona.clusters = 3
    c.train.update(steps=8, batch_size=4, seq_len=96, checkpoint_every=4)
  return c


def sweep(add):
  taxonomy_grid(add, methods=("rag", "soft_prompt", "lora"))  # zero_shot, then each method x granularity
