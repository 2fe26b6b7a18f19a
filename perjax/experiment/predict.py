"""Predictions for the evaluation prompts: greedy generation mapped onto a task's labels
(`generate`), the label the model finds most likely (`label_likelihood`), or, for numeric labels,
the median of the model's distribution over them (`label_median`)."""
import re
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from perjax.bounded_inputs import cap_new_tokens, length_batches
from perjax.errors import ConfigError
from perjax.experiment.settings import EvalSettings
from perjax.generation import SamplingConfig
from perjax.scoring import continuation_logprobs

MODES = ("generate", "label_likelihood", "label_median", "auto")
# auto: a task with a label set (classification, rating) is answered by its most likely label,
# which dev favoured over greedy text on both LaMP-style label tasks measured (docs/results.md);
# a generation task by greedy text.


# Phrases after which a model states its answer: a noun with a connector ("Rating: 4", "the
# answer is comedy"; a bare "4 stars" is no cue) or a first-person verb ("I'd say 4").
_CUES = re.compile(r"\b(?:(?:answer|rating|score|stars|category|tag|label|prediction)\s*"
                   r"(?:[:=]|\bis\b|\bwould be\b|\bof\b)|"
                   r"i(?:'d|’d| would) (?:say|give|rate|pick|choose|go with)\b)", re.IGNORECASE)
_LIST_MARKER = re.compile(r"(?m)^\s*\d+[.)](?=\s)")  # "1. ", "2) " opening a line
# "scale of 1 to 5", "from 1-5", "out of 5", "/5": numbers that name the scale, not an answer
_SCALE = re.compile(r"\b(?:scale|range)?\s*(?:of|from)\s+\d+\s*(?:to|-)\s*\d+|"
                    r"\bout of\s+\d+|/\s*\d+", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w]|\.\d)")


def _as_number(s: str) -> float | None:
  try:
    return float(s)
  except ValueError:
    return None


def _first_label(text: str, labels: Sequence[str]) -> str | None:
  """The label `text` names first: for numeric labels the first standalone number that is one,
  else the first whole-word mention (longest on ties, so "based on a book" beats "book")."""
  values = [_as_number(l) for l in labels]
  if all(v is not None for v in values):
    for m in _NUMBER.finditer(text):
      if float(m.group()) in values:
        return labels[values.index(float(m.group()))]
    return None
  best = None
  for label in labels:
    m = re.search(r"(?<!\w)" + re.escape(label.lower()) + r"(?!\w)", text.lower())
    if m and (best is None or (m.start(), -len(label)) < best[0]):
      best = ((m.start(), -len(label)), label)
  return best[1] if best else None


def to_label(text: str, labels: Sequence[str]) -> str:
  """The label a generated answer names, tried in this order:

  1. the whole answer is a label (case-insensitive; surrounding quotes and periods ignored);
  2. the first label after an answer cue ("Rating: 4", "the answer is comedy", "I'd say 4");
  3. none, if the answer enumerates ("1. 1\\n2. 2 ..." lists the scale, it picks nothing);
  4. the first label named: for numeric label sets the first standalone number that is a
     label, after dropping list markers and scale mentions ("scale of 1 to 5", "out of 5");
     otherwise the first whole-word mention, longest on ties.
  With no label found, the stripped text itself, which then scores as wrong (for MAE as the
  farther end of the scale, as LaMP's evaluation does).
  """
  clean = text.strip().strip(".\"'").strip()
  lower = {l.lower(): l for l in labels}
  if clean.lower() in lower:
    return lower[clean.lower()]
  body = _SCALE.sub(" ", _LIST_MARKER.sub(" ", clean))
  for cue in _CUES.finditer(body):
    label = _first_label(body[cue.end():], labels)
    if label is not None:
      return label
  if len(_LIST_MARKER.findall(clean)) >= 2:
    return clean
  label = _first_label(body, labels)
  return label if label is not None else clean


NO_LABEL = "none"  # the empty label set (StudEmo's annotations with no emotion marked)


def to_label_set(text: str, labels: Sequence[str]) -> str:
  """The set of labels a generated answer names, ", "-joined in the order of `labels` (a
  multi-label target's own format); NO_LABEL when it names none. Whole-word mentions count, so
  "anticipation, joy" and "Joy and anticipation." both read as "joy, anticipation"."""
  low = text.lower()
  named = [l for l in labels if re.search(r"(?<!\w)" + re.escape(l.lower()) + r"(?!\w)", low)]
  return ", ".join(named) or NO_LABEL


def _pick(level_ids, batch) -> dict:
  """The `batch` rows of every level's ids."""
  return {k: np.asarray(v)[batch] for k, v in (level_ids or {}).items()}


def generate(generator, codec, prompts, group_ids, settings: EvalSettings,
             level_ids=None) -> list[str]:
  """Greedy continuations of `prompts` (each with its group's personal parameters; `level_ids`
  {level: [N] ids} where modules sit at other levels)."""
  context = generator.config.max_position - generator.prefix_len
  # at most half the context for the answer: the other half stays for the prompt
  sampling = SamplingConfig(max_new_tokens=cap_new_tokens(
      settings.max_new_tokens, context, context, name="eval.max_new_tokens"),
      num_beams=settings.num_beams)
  ids = codec.prompt_ids(prompts, reserve=sampling.max_new_tokens)
  outputs = [None] * len(ids)
  # Batches of similar length: a long prompt pads only its own batch (see bounded_inputs).
  # eval.batch_size counts decoded rows: each prompt takes one per beam
  per_batch = max(1, settings.batch_size // sampling.num_beams)
  for batch in tqdm(length_batches([len(p) for p in ids], per_batch),
                    desc="generate", dynamic_ncols=True):
    outs = generator.generate_ids([ids[i] for i in batch],
                                  group_ids=[group_ids[i] for i in batch],
                                  level_ids=_pick(level_ids, batch), sampling=sampling,
                                  seed=settings.seed)
    for i, o in zip(batch, outs):
      outputs[i] = generator.tokenizer.decode(o, skip_special_tokens=True)
  return outputs


def rank_labels(generator, codec, prompts, group_ids, labels, settings: EvalSettings,
                level_ids=None):
  """(the most likely label, [N, L] log-probs) per prompt. A label is scored as the target the
  training loss sees: its tokens, then EOS, right after the chat-formatted prompt."""
  candidates = [codec.target_ids(l) for l in labels]
  ids = codec.prompt_ids(prompts, reserve=max(len(c) for c in candidates))
  # the batch size counts [prompt + label] rows, so memory stays put as label sets grow
  per_batch = max(1, settings.batch_size // len(labels))
  scores = np.zeros((len(ids), len(labels)), np.float32)
  for batch in length_batches([len(p) for p in ids], per_batch):
    scores[batch] = continuation_logprobs(
        generator, [ids[i] for i in batch], candidates,
        group_ids=[group_ids[i] for i in batch], level_ids=_pick(level_ids, batch),
        batch_size=len(batch))
  return [labels[i] for i in np.argmax(scores, axis=1)], scores


def median_labels(scores, labels) -> list[str]:
  """Per row of [N, L] label log-probs, the median of the distribution they give (renormalised
  over the labels): the label with the least expected absolute error, minimum Bayes risk decoding
  for MAE. The most likely label minimises the expected 0/1 loss instead; on a 1-5 rating
  spread over 3, 4 and 5 it can pick 5 where 4 is nearer on average."""
  return quantile_labels(scores, labels, 0.5)


def quantile_labels(scores, labels, q: float) -> list[str]:
  """Per row of [N, L] label log-probs over numeric labels, the first label (in numeric order)
  at which the distribution's CDF reaches `q` in (0, 1]: the median at 0.5; above it, answers
  lean towards the higher labels."""
  if not 0 < q <= 1:
    raise ValueError(f"a quantile must be in (0, 1], got {q}")
  values = np.array([float(l) for l in labels])
  order = np.argsort(values, kind="stable")
  probs = np.exp(scores - scores.max(axis=1, keepdims=True))[:, order]
  cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
  # a float tolerance, so that an exact half reaches the median
  first = np.argmax(cdf >= q - 1e-6, axis=1)
  return [labels[order[i]] for i in first]


def numeric_labels(labels) -> bool:
  try:
    [float(l) for l in labels]
  except ValueError:
    return False
  return True


def predict(generator, codec, prompts, group_ids, labels, settings: EvalSettings,
            level_ids=None, label_sets: bool = False):
  """(raw outputs, predictions): what the model said and the label (or text) it is scored as."""
  outputs, preds, _ = predict_with_scores(generator, codec, prompts, group_ids, labels, settings,
                                          level_ids, label_sets)
  return outputs, preds


def predict_with_scores(generator, codec, prompts, group_ids, labels, settings: EvalSettings,
                        level_ids=None, label_sets: bool = False):
  """`predict`, and the [N, L] label log-probs where the mode scores labels (else None): what
  any other decision rule over the labels needs. `label_sets`: a target is a set of labels
  (Task.label_sets), answered by greedy text read as the set it names."""
  mode = settings.mode
  if mode not in MODES:
    raise ConfigError(f"predict.mode {mode!r} is not one of {MODES}")
  if label_sets:
    if mode not in ("auto", "generate"):  # ranking 2^L label sets is not what these modes do
      raise ConfigError(f"predict.mode={mode} picks one label; this task's targets are label "
                        "sets: use generate (or auto)")
    outputs = generate(generator, codec, prompts, group_ids, settings, level_ids)
    return outputs, [to_label_set(o, labels) for o in outputs], None
  if mode == "auto":
    mode = "label_likelihood" if labels else "generate"
  if mode in ("label_likelihood", "label_median"):
    if not labels:
      raise ConfigError(f"predict.mode={mode} needs a task with a label set")
    if mode == "label_median" and not numeric_labels(labels):
      raise ConfigError(f"predict.mode=label_median needs numeric labels, got {list(labels)[:5]}")
    preds, scores = rank_labels(generator, codec, prompts, group_ids, labels, settings,
                                level_ids)
    if mode == "label_median":
      preds = median_labels(scores, labels)
    return preds, preds, scores
  outputs = generate(generator, codec, prompts, group_ids, settings, level_ids)
  return outputs, [to_label(o, labels) if labels else o.strip() for o in outputs], None


def label_probs(scores, labels) -> list[dict[str, float]]:
  """Per row of [N, L] label log-probs, {label: probability} renormalised over the labels."""
  probs = np.exp(scores - scores.max(axis=1, keepdims=True))
  probs /= probs.sum(axis=1, keepdims=True)
  return [{l: round(float(p), 5) for l, p in zip(labels, row)} for row in probs]
