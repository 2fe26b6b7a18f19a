"""A LaMP / LongLaMP task from its official files; metrics are the task's official ones.

`path` is the folder of `{prefix}{split}_questions.json` / `{prefix}{split}_outputs.json`
(default: the lamp_tiny LaMP-2 sample in the shared data folder). `prefix` is found from the
file names, as `perjax data inspect` does; give it only for a folder holding several tasks.
LaMP has no persona labels, so persona groups come from clustering users' profiles. LaMP's
test golds are withheld, so runs are scored on the dev split.

  perjax run experiments/lamp.py:method=rag --workdir /tmp/lamp-rag
  perjax run experiments/lamp.py:path=/data/LaMP_2,method=rag --workdir /tmp/l2
  perjax sweep experiments/lamp.py:path=/data/LaMP_2 --workdir /tmp/lamp2
  perjax sweep experiments/lamp.py:smoke --workdir /tmp/lamp-smoke
"""
from perjax.experiment.config import defaults, parse_arg
from perjax.experiment.sweep import taxonomy_grid


def get_config(arg=None):
  arg = parse_arg(arg, smoke=False, method="zero_shot", granularity="user", path="",
                  prefix="", model="smollm2-135m-instruct")
  c = defaults()
  c.model, c.method, c.granularity = arg.model, arg.method, arg.granularity
  c.data.name = "lamp"
  c.data.params = dict(path=arg.path or None, prefix=arg.prefix)
  c.eval.split = "dev"  # LaMP's test golds are withheld
  # Classification and rating tasks (LaMP-1, 2, 3) answer by their most likely label, generation
  # tasks by greedy text: on dev, label likelihood beat greedy text mapped onto the labels for
  # both LaMP-style label tasks measured (MovieLens rating and tagging, docs/results.md).
  c.predict.mode = "auto"
  c.prompt.system = "Follow the instruction. Answer briefly."
  c.methods.rag.k = 4
  c.granularities.persona.use_labels = False
  c.granularities.persona.clusters = 8
  c.train.update(steps=300, batch_size=8, seq_len=256, lr=1e-3, checkpoint_every=100)
  c.eval.update(batch_size=16, max_new_tokens=32, num_beams=4)  # LaMP decodes with 4 beams

  if arg.smoke:
    c.data.max_train, c.data.max_test = 16, 8
    c.granularities.persona.clusters = 2
    c.train.update(steps=4, batch_size=2, seq_len=192, checkpoint_every=2)
    c.eval.update(max_new_tokens=16, num_beams=1)
  return c


def sweep(add):
  taxonomy_grid(add, methods=("rag", "soft_prompt", "lora"))  # zero_shot, then each method x granularity
  add(method="rag+lora", granularity="user")  # OPPU
