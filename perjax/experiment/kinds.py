"""Task kinds: how a kind of task is encoded for training, batched and evaluated. One training
loop (`train.train`) serves every kind; the runner picks the kind of its task.

  views(examples)                   the examples as prompted examples (what grouping and the
                                    prompting methods see)
  training_rows(codec, prompts, examples, recipe, seq_len) -> (rows, make_batch)
  before_training(generator, codec, prompts, examples, group_ids, settings, trains) -> state
  evaluate(generator, codec, prompts, examples, group_ids, task, split, settings, state,
           level_ids) -> (metrics, one record per example)

`make_batch(items, seq_len, pad_id, accum)` takes `row + (group,)` tuples. A new kind (ranking,
say) is a class with these four methods, registered in `TASK_KINDS` with `matches(task)`.
"""
import functools

import jax
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from perjax.data.schema import PersonalizedExample, PreferenceExample
from perjax.errors import ConfigError
from perjax.experiment import best_of_n, predict
from perjax.metrics import evaluate_task, preference_accuracy
from perjax.models.personal import per_example_array
from perjax.registry import Registry
from perjax.training import batching
from perjax.training.objectives import sequence_logprobs

TASK_KINDS = Registry("task kind")
RESPONSES = ("chosen", "rejected")


@TASK_KINDS.register("supervised")
class Supervised:
  """Generation and classification: (input, target) examples, answered by greedy generation
  mapped onto the labels or by the most likely label (`EvalSettings.mode`)."""

  @staticmethod
  def matches(task) -> bool:
    return all(isinstance(e, PersonalizedExample) for e in task.examples())

  @staticmethod
  def views(examples):
    return list(examples)

  @staticmethod
  def training_rows(codec, prompts, examples, recipe, seq_len):
    del recipe
    return codec.supervised_rows(prompts, [e.target for e in examples], seq_len), \
        batching.make_batch

  @staticmethod
  def before_training(*args, **kwargs):  # nothing to measure before training
    return None

  @staticmethod
  def evaluate(generator, codec, prompts, examples, group_ids, task, split, settings, state,
               level_ids=None):
    del state
    outputs, preds, scores = predict.predict_with_scores(
        generator, codec, prompts, group_ids, task.labels, settings, level_ids, task.label_sets)
    metrics = evaluate_task(task, split, {e.id: p for e, p in zip(examples, preds)})
    records = [{"id": e.id, "user_id": e.user_id, "group": int(g), "prompt": q.text,
                "system": q.system, "output": o, "prediction": p, "target": e.target}
               for e, g, q, o, p in zip(examples, group_ids, prompts, outputs, preds)]
    if scores is not None:  # the label distribution, for calibration or another decision rule
      for r, probs in zip(records, predict.label_probs(scores, task.labels)):
        r["label_probs"] = probs
    return metrics, records


@TASK_KINDS.register("preference")
class Preference:
  """Chosen/rejected pairs per user or persona. A pairwise objective (DPO) trains on pair
  batches; any other is fine-tuned on the chosen responses (SFT on preferred answers). Scored
  by the preference accuracy of the implicit reward r(x, y) = log p(y | x) - log p_ref(y | x),
  the reference being the model before training; a run that trains nothing is scored by the
  raw log-likelihood margin. A method with a reward model (`settings.reward`) is scored by its
  reward instead, and `predict.mode=best_of_n` also reranks sampled responses with it."""

  @staticmethod
  def matches(task) -> bool:
    return any(isinstance(e, PreferenceExample) for e in task.examples())

  @staticmethod
  def views(examples):
    """Pairs as prompted examples (input = the prompt, no profile), so grouping and the
    prompting methods treat them like any other task."""
    return [PersonalizedExample(id=e.id, user_id=e.user_id, input=e.prompt, target=e.chosen,
                                persona_id=e.persona_id) for e in examples]

  @staticmethod
  def _rows(codec, prompts, examples, seq_len) -> dict:
    prompt_ids = codec.prompt_ids(prompts)
    return {k: codec.response_rows(prompt_ids, [getattr(e, k) for e in examples], seq_len)
            for k in RESPONSES}

  @classmethod
  def training_rows(cls, codec, prompts, examples, recipe, seq_len):
    if not recipe.pairwise:
      return codec.supervised_rows(prompts, [e.chosen for e in examples], seq_len), \
          batching.make_batch
    rows = cls._rows(codec, prompts, examples, seq_len)
    return list(zip(rows["chosen"], rows["rejected"])), batching.make_preference_batch

  @classmethod
  def before_training(cls, generator, codec, prompts, examples, group_ids, settings, trains,
                      level_ids=None):
    rows = cls._rows(codec, prompts, examples, settings.seq_len)
    if settings.mode == "best_of_n":
      if settings.reward is None:
        raise ConfigError("predict.mode=best_of_n needs a method with a reward model "
                          "(reward_model)")
      # sampled now, from the policy before training (the base for a reward model alone)
      return rows, None, best_of_n.sample(generator, codec, prompts, group_ids, settings,
                                          level_ids)
    if settings.reward is not None:  # a reward model's scores need no reference
      return rows, None, None
    return rows, (score(generator, rows, group_ids, settings, level_ids) if trains else None), \
        None

  @staticmethod
  def evaluate(generator, codec, prompts, examples, group_ids, task, split, settings, state,
               level_ids=None):
    del task, split
    rows, ref, candidates = state
    scorer = settings.reward.score if settings.reward is not None else None
    policy = score(generator, rows, group_ids, settings, level_ids, scorer)
    reward = {k: policy[k] - (ref[k] if ref is not None else 0.0) for k in RESPONSES}
    metrics = {"preference_accuracy": preference_accuracy(reward["chosen"].tolist(),
                                                          reward["rejected"].tolist())}
    personas = sorted({e.persona_id for e in examples if e.persona_id is not None})
    for p in personas if len(personas) > 1 else ():  # e.g. DSP's domains, one column each
      idx = [i for i, e in enumerate(examples) if e.persona_id == p]
      metrics[f"preference_accuracy/{p}"] = preference_accuracy(
          reward["chosen"][idx].tolist(), reward["rejected"][idx].tolist())
    records = [{"id": e.id, "user_id": e.user_id, "group": int(g), "prompt": q.text,
                "system": q.system, "chosen_reward": float(c), "rejected_reward": float(r)}
               for e, g, q, c, r in zip(examples, group_ids, prompts, reward["chosen"],
                                        reward["rejected"])]
    if candidates is not None:
      best, rewards = best_of_n.rerank(generator, codec, prompts, candidates, group_ids,
                                       settings, score, level_ids)
      metrics.update(best_of_n.metrics(rewards, best))
      for r, texts, b, rs in zip(records, candidates, best, rewards):
        r.update(best_of_n=texts[b], candidates=texts, candidate_rewards=rs.tolist())
    return metrics, records


def kind_of(task):
  """The registered kind whose `matches(task)` holds."""
  for _, kind in TASK_KINDS.items():
    if kind.matches(task):
      return kind
  raise ValueError(f"no task kind handles data set {task.name!r}")


@functools.partial(jax.jit, static_argnames=("graphdef", "scorer"))
def _logprobs(graphdef, state, rows, scorer=None):
  return (scorer or sequence_logprobs)(nnx.merge(graphdef, state), rows)


def _pad_rows(a, n: int):
  return np.pad(a, [(0, n - len(a))] + [(0, 0)] * (a.ndim - 1))


def score(generator, rows, group_ids, settings, level_ids=None, scorer=None) -> dict:
  """{"chosen"/"rejected" (the keys of `rows`): [N] log p(response | prompt)} under the
  generator's current model, in fixed-size batches (one compiled program); `scorer(model,
  rows) -> [B]` scores instead (a reward model)."""
  bs, pad = settings.batch_size, generator.config.pad_token_id
  n = len(group_ids)
  out = {k: [] for k in rows}
  for s in tqdm(range(0, n, bs), desc="score", dynamic_ncols=True):
    for k in rows:
      chunk = [rows[k][i] + (int(group_ids[i]),) for i in range(s, min(s + bs, n))]
      chunk += [([], [], 0)] * (bs - len(chunk))  # filler rows, dropped below
      batch = {key: v[0] for key, v in batching.make_batch(chunk, settings.seq_len, pad).items()}
      if level_ids:  # filler rows read row 0 (and zero inputs)
        batch["level_ids"] = {l: _pad_rows(per_example_array(ids)[s:s + bs], bs)
                              for l, ids in level_ids.items()}
      out[k].append(np.asarray(_logprobs(generator.graphdef, generator.state, batch, scorer)))
  return {k: np.concatenate(v)[:n] for k, v in out.items()}
