"""Preference tasks (chosen/rejected pairs per user or persona): training and evaluation.

A pairwise method (DPO) trains on preference batches; any other training method is fine-tuned
with its own objective on the chosen responses (SFT on preferred answers). Evaluation is the
preference accuracy of the implicit reward r(x, y) = log p_policy(y | x) - log p_ref(y | x),
with the reference = the model before training (the base, for LoRA-style adapters that start
at b = 0); a method that trains nothing (zero_shot) is scored by the raw log-likelihood margin.
"""
import functools

import jax
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from perjax.data.schema import PersonalizedExample, PreferenceExample
from perjax.errors import ConfigError
from perjax.experiment.train import fit, step_examples, train
from perjax.metrics import preference_accuracy
from perjax.training import batching
from perjax.training.objectives import sequence_logprobs

RESPONSES = ("chosen", "rejected")


def is_preference(task) -> bool:
  return any(isinstance(e, PreferenceExample) for e in task.examples())


def as_prompted(examples) -> list[PersonalizedExample]:
  """Pairs seen as prompted examples (input = the prompt, no profile), so the granularity and
  the prompting methods treat them like any other task."""
  return [PersonalizedExample(id=e.id, user_id=e.user_id, input=e.prompt, target=e.chosen,
                              persona_id=e.persona_id) for e in examples]


def encode(generator, prompts, examples, system, config) -> dict:
  """{"chosen"/"rejected": [(ids, loss_mask)]}: the chat-formatted prompt, then the response and
  EOS, as the LM loss sees a target. A response too long for `train.seq_len` is cut (its first
  tokens are compared), not the prompt: the preference is conditional on the prompt."""
  tok, seq_len = generator.tokenizer, config.train.seq_len
  eos = list(generator.config.eos_token_ids)[:1]
  prompt_ids = generator.encode_prompts(prompts, chat=config.prompt.chat, system=system)
  out = {}
  for k in RESPONSES:
    out[k] = []
    for p, e in zip(prompt_ids, examples):
      room = max(seq_len - len(p), seq_len // 2)
      response = (tok(getattr(e, k), add_special_tokens=False).input_ids + eos)[:room]
      out[k].append(batching.pack_example(p, response, seq_len))
  return out


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _logprobs(graphdef, state, rows):
  return sequence_logprobs(nnx.merge(graphdef, state), rows)


def score(generator, encoded, group_ids, config) -> dict:
  """{"chosen"/"rejected": [N] log p(response | prompt)} under the generator's current model,
  in fixed-size batches (one compiled program)."""
  bs, pad = config.eval.batch_size, generator.config.pad_token_id
  n = len(group_ids)
  out = {k: [] for k in RESPONSES}
  for s in tqdm(range(0, n, bs), desc="score", dynamic_ncols=True):
    for k in RESPONSES:
      chunk = [encoded[k][i] + (int(group_ids[i]),) for i in range(s, min(s + bs, n))]
      chunk += [([], [], 0)] * (bs - len(chunk))  # filler rows, dropped below
      rows = {key: v[0] for key, v in
              batching.make_batch(chunk, config.train.seq_len, pad).items()}
      out[k].append(np.asarray(_logprobs(generator.graphdef, generator.state, rows)))
  return {k: np.concatenate(v)[:n] for k, v in out.items()}


def train_pairs(model, encoded, group_ids, num_groups, recipe, config, workdir):
  """Trains with the recipe's pairwise objective on preference batches."""
  tc = config.train
  pad = model.config.pad_token_id

  def batch_at(s):
    idx = step_examples(len(group_ids), s, tc.batch_size * tc.accum, config.seed)
    pairs = [(encoded["chosen"][i], encoded["rejected"][i], int(group_ids[i])) for i in idx]
    return batching.make_preference_batch(pairs, tc.seq_len, pad, tc.accum)

  return fit(model, recipe.objective, batch_at, num_groups, config, workdir)


def run(model, generator, recipe, groups, train_examples, eval_examples, prompts_of, config,
        workdir):
  """Trains (if the recipe does) and evaluates; returns (metrics, one record per eval pair).
  `prompts_of(prompted_examples, split)` builds the final `Prompt`s (user and system
  message)."""
  split = config.eval.split
  views = as_prompted(eval_examples)
  group_ids = groups.group_ids(views)
  eval_prompts = prompts_of(views, split)
  encoded = encode(generator, [p.text for p in eval_prompts], eval_examples,
                   [p.system for p in eval_prompts], config)
  ref = score(generator, encoded, group_ids, config) if recipe.trains else None
  if recipe.trains:
    if not train_examples:
      raise ConfigError("this method trains personal parameters, but the train split is empty")
    train_views = as_prompted(train_examples)
    train_ids = groups.group_ids(train_views)
    prompts = prompts_of(train_views, "train")
    texts, systems = [p.text for p in prompts], [p.system for p in prompts]
    if recipe.pairwise:
      model = train_pairs(model, encode(generator, texts, train_examples, systems, config),
                          train_ids, groups.num_groups, recipe, config, workdir)
    else:  # SFT on the preferred responses, with the method's own objective
      model = train(model, generator, recipe, texts, [e.chosen for e in train_examples],
                    train_ids, groups.num_groups, config, workdir, system=systems)
    generator.refresh(model)
  policy = score(generator, encoded, group_ids, config)
  reward = {k: policy[k] - (ref[k] if ref is not None else 0.0) for k in RESPONSES}
  metrics = {"preference_accuracy": preference_accuracy(reward["chosen"].tolist(),
                                                        reward["rejected"].tolist())}
  records = [{"id": e.id, "user_id": e.user_id, "group": int(g), "prompt": q.text,
              "system": q.system, "chosen_reward": float(c), "rejected_reward": float(r)}
             for e, g, q, c, r in zip(eval_examples, group_ids, eval_prompts, reward["chosen"],
                                      reward["rejected"])]
  return metrics, records
