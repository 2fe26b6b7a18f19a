"""MovieLens tagging (LaMP-2 style): which of the 10 most frequent tags a user gives a movie.

Needs ml-latest-small in the shared data folder (PERJAX_DATA, default ../shared/data/movielens).
Answers are the tag the model finds most likely (`predict.mode=label_likelihood`): SmolLM2-135M
answers in prose, which rarely names a tag. rag.k (8 over 4) was chosen on the dev
split (`--config.eval.split=dev`); LoRA was not tuned. The sweep reports test.

  perjax run experiments/movielens_tagging.py:method=rag,granularity=user --workdir /tmp/mlt-rag
  perjax sweep experiments/movielens_tagging.py --workdir /tmp/mlt   # ~10 min on 2 CPU cores
  perjax sweep experiments/movielens_tagging.py:smoke --workdir /tmp/mlt-smoke
"""
from perjax.experiment.config import defaults, parse_arg
from perjax.experiment.sweep import taxonomy_grid


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, method="zero_shot", granularity="user",
                  model="smollm2-135m-instruct")
  c = defaults()
  c.model, c.method, c.granularity = arg.model, arg.method, arg.granularity
  c.data.name = "movielens-tagging"
  # 60/20/20 per user in time order: 117 train, 41 dev, 41 test examples (the 80/10/10 cut
  # leaves 21 test examples). Profiles hold only in-vocabulary tags (LaMP-2; profile_tags).
  c.data.params = dict(split="time", seed=0, n_tags=10, max_profile=32,
                       fractions=(0.6, 0.2, 0.2))
  c.prompt.system = "You tag movies for a user. Answer with one tag from: {labels}."
  c.prompt.suffix = "\nWhich tag does this user give this movie?\ntag:"
  c.predict.mode = "label_likelihood"
  c.methods.rag.k = 8
  c.methods.lora.rank = 8
  c.granularities.persona.use_labels = False  # no persona labels: cluster users' profiles
  c.granularities.persona.clusters = 4
  # ~3 s a step on 2 CPU cores; few steps need a large learning rate (as in quickstart).
  c.train.update(steps=24, batch_size=4, seq_len=96, lr=1e-2, checkpoint_every=12)
  c.eval.update(batch_size=40)  # [prompt + label] rows per scoring batch

  if arg.smoke:
    c.data.max_train, c.data.max_test = 64, 16
    c.granularities.persona.clusters = 3
    c.train.update(steps=8, batch_size=4, checkpoint_every=4)
  return c


def sweep(add):
  taxonomy_grid(add, methods=("rag", "lora"))  # zero_shot, then each method x granularity
