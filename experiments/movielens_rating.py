"""MovieLens rating (LaMP-3 style): the 1-5 stars a user gives a movie; MAE / RMSE.

User split (no dev or test user appears in train; ~570 test examples from 18 users, each with
20 earlier ratings of their own history before the first scored one). Needs ml-latest-small in
the shared data folder (PERJAX_DATA, default ../shared/data/movielens).

The sweep is the OPPU protocol's comparison: the non-personalized baseline, retrieval at each
granularity, a per-user LoRA trained on each evaluated user's own history, OPPU (a task LoRA on
the train split, then per-user residual LoRAs on own history, with retrieval). Global retrieval
brings other users' ratings of the same movie. Settings chosen on dev: `sweep(add, "dev")` runs
the candidates on the dev split.

  perjax sweep experiments/movielens_rating.py --seeds 3 --workdir runs/mlr      # test, 3 seeds
  perjax sweep experiments/movielens_rating.py:dev --workdir runs/mlr-dev         # the dev choice
  perjax sweep experiments/movielens_rating.py:part=bias --seeds 3 --workdir runs/mlr-bias
  perjax sweep experiments/movielens_rating.py:part=peer --seeds 3 --workdir runs/mlr-peer
  perjax sweep experiments/movielens_rating.py:part=estimate --seeds 3 --workdir runs/mlr-estimate
  perjax sweep experiments/movielens_rating.py:dev,part=estimate --seeds 2 --workdir runs/mlr-est-dev
  perjax sweep experiments/movielens_rating.py:part=estimate-cosine --seeds 3 --workdir runs/mlr-cos
  perjax sweep experiments/movielens_rating.py:dev,part=rounded --seeds 2 --workdir runs/mlr-round-dev
  perjax sweep experiments/movielens_rating.py:dev,part=longer --workdir runs/mlr-long-dev
  perjax sweep experiments/movielens_rating.py:part=oppu --seeds 3 --workdir runs/mlr-oppu
  perjax sweep experiments/movielens_rating.py:dev,part=all-projections --workdir runs/mlr-all-dev
  perjax run experiments/movielens_rating.py:method=rag,granularity=user --workdir /tmp/mlr-rag
  perjax sweep experiments/movielens_rating.py:smoke --workdir /tmp/mlr-smoke
"""
from perjax.errors import ConfigError
from perjax.experiment.config import defaults, parse_arg
from perjax.registry import suggest

# The cells of the routes docs/results.md reports on this task ("Other users' ratings of the
# movie plus the user's own bias" onwards): what each is, why its settings were chosen, and
# what it scored. Settings fixed in advance unless that section says "chosen on dev".
OWN = {"train.on": "own_history"}
# other users' ratings of the movie by global retrieval, a task adapter, then each user's
# residual adapter on their own history; rows of 264 tokens hold k=4 retrieved items uncut;
# the label median because the metric is MAE
ITEM_AND_BIAS = dict(method="rag@global+lora@global+lora", granularity="user", **OWN,
                     **{"methods.rag.k": 4, "train.task_steps": 64, "train.seq_len": 264,
                        "predict.mode": "label_median"})
# the same signal as statistics in the prompt (methods/peer_stats.py), one task adapter; its
# prompts (at most ~110 tokens) fit rows of 128
PEER = dict(method="peer_stats+lora", granularity="global",
            **{"train.steps": 64, "train.batch_size": 8, "train.seq_len": 128,
               "predict.mode": "label_median"})
# the statistics plus the estimate they imply, as one number
ESTIMATE = dict(PEER, **{"methods.peer_stats.estimate": True, "train.steps": 128})
# the learning rate decayed to 0 (chosen on dev against ESTIMATE: `dev,part=estimate`)
ESTIMATE_COSINE = dict(ESTIMATE, **{"train.schedule": "cosine"})
# variants of ESTIMATE_COSINE, each checked on dev only: the estimate also rounded in the prompt,
# twice the steps, the adapter on every projection
ESTIMATE_ROUNDED = dict(ESTIMATE_COSINE, **{"methods.peer_stats.round_estimate": True})
ESTIMATE_LONGER = dict(ESTIMATE_COSINE, **{"train.steps": 256})
ESTIMATE_ALL_PROJECTIONS = dict(ESTIMATE_COSINE,
                                **{"methods.lora.targets": "q,k,v,o,gate,up,down"})

# `part=NAME`: one route's cell beside the zero_shot baseline (oppu: the main sweep's
# seed-dependent cells), instead of the whole sweep
PARTS = {"bias": ITEM_AND_BIAS, "peer": PEER, "estimate": ESTIMATE,
         "estimate-cosine": ESTIMATE_COSINE, "rounded": ESTIMATE_ROUNDED,
         "longer": ESTIMATE_LONGER, "all-projections": ESTIMATE_ALL_PROJECTIONS, "oppu": None}
# the parts run on dev without the baseline (its dev score was already known)
DEV_WITHOUT_BASELINE = ("rounded", "longer", "all-projections")
BASELINE = dict(method="zero_shot", granularity="global", seeds=1)


def parse(arg):
  """The `file.py:ARG` of this experiment, parsed; an unknown key or part is a ConfigError."""
  arg = parse_arg(arg, smoke=False, dev=False, part="", method="zero_shot",
                  granularity="user", model="smollm2-135m-instruct")
  if arg.part and arg.part not in PARTS:
    raise ConfigError(f"unknown part {arg.part!r}{suggest(arg.part, PARTS)}")
  return arg


def get_config(arg=None):
  arg = parse(arg)
  c = defaults()
  c.model, c.method, c.granularity = arg.model, arg.method, arg.granularity
  c.data.name = "movielens-rating"
  c.data.params = dict(split="user", seed=0)
  c.prompt.system = "You predict a user's movie ratings. Answer with one number from 1 to 5."
  c.prompt.suffix = "\nHow many stars (1-5) does this user give this movie?\nstars:"
  # Chosen on dev (docs/results.md): the most likely label beats greedy text mapped onto labels,
  # and k=8 retrieved items beat 4.
  c.predict.mode = "label_likelihood"
  c.methods.rag.k = 8
  c.methods.lora.rank = 8
  c.granularities.persona.use_labels = False
  c.granularities.persona.clusters = 8
  # Small enough for 2 shared CPU cores (fixed in advance, not tuned): 32 steps of 4 examples
  # per stage, a large learning rate to move the zero-initialised adapters in few steps.
  c.train.update(steps=32, batch_size=4, seq_len=160, lr=5e-3, checkpoint_every=16)
  c.eval.update(split="test", batch_size=32, max_new_tokens=4)
  c.data.max_test = 500

  if arg.dev:
    c.eval.split = "dev"
    c.data.max_test = 200
  if arg.smoke:
    c.data.params.update(max_users=20, min_history=5)
    c.data.max_train, c.data.max_test = 64, 32
    c.granularities.persona.clusters = 3
    c.train.update(steps=8, batch_size=4, seq_len=192, checkpoint_every=4)
  return c


def sweep(add, arg=None):
  arg = parse(arg)
  if arg.part == "oppu":  # the seed-dependent cells of the main sweep, with 3 seeds
    add(**BASELINE)
    add(method="rag", granularity="persona")
    add(method="rag+lora@global+lora", granularity="user", **OWN)  # OPPU
    return
  if arg.dev and arg.part in ("estimate", "estimate-cosine"):  # the schedule, chosen on dev
    add(**ESTIMATE)
    add(**ESTIMATE_COSINE)
    return
  if arg.part:
    if not (arg.dev and arg.part in DEV_WITHOUT_BASELINE):
      add(**BASELINE)
    add(**PARTS[arg.part])
    return
  if arg.dev:  # the settings chosen on dev: answer mode and retrieval depth
    for mode in ("generate", "label_likelihood"):
      add(method="zero_shot", granularity="global", **{"predict.mode": mode})
      add(method="rag", granularity="user", **{"predict.mode": mode})
    for k in (4, 8):
      add(method="rag", granularity="global", **{"methods.rag.k": k})
    return
  # zero_shot and BM25 retrieval use no randomness: one seed gives every seed's answers
  add(**BASELINE)
  add(method="rag", granularity="user", seeds=1)
  # k-means personas follow the seed; one seed here, to fit the 2-core budget
  add(method="rag", granularity="persona", seeds=1)
  add(method="rag", granularity="global", seeds=1)
  add(method="lora", granularity="user", **OWN)
  add(method="rag+lora@global+lora", granularity="user", **OWN)  # OPPU
  add(**ITEM_AND_BIAS)
