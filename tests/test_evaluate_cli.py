"""`perjax evaluate` against independent re-implementations on generated LaMP-style files."""
import json
import math
import random
import re

import pytest

from perjax.cli import main
from perjax.data.lamp import LAMP2_MOVIE_TAGS

WORDS = "the a cat dog sat ran on under mat tree red blue big small house car".split()


def _write(path, task, pairs):
  path.write_text(json.dumps({"task": task, "golds": [{"id": i, "output": o} for i, o in pairs]}))
  return str(path)


def _run(capsys, golds, preds):
  code = main(["evaluate", golds, preds])
  out = capsys.readouterr()
  return code, out.out, out.err


def _f1_by_hand(golds, preds, labels):
  scores = []
  for lab in labels:
    tp = sum(1 for g, p in zip(golds, preds) if g == p == lab)
    fp = sum(1 for g, p in zip(golds, preds) if p == lab and g != lab)
    fn = sum(1 for g, p in zip(golds, preds) if g == lab and p != lab)
    scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
  return sum(scores) / len(scores)


def _tokens(s):
  return [t for t in re.sub(r"[^a-z0-9]+", " ", s.lower()).split()]


def _lcs(a, b):
  row = [0] * (len(b) + 1)
  for x in a:
    prev = 0
    for j, y in enumerate(b):
      cur = row[j + 1]
      row[j + 1] = prev + 1 if x == y else max(row[j + 1], row[j])
      prev = cur
  return row[-1]


def _f(overlap, n_pred, n_gold):
  if overlap == 0:
    return 0.0
  p, r = overlap / n_pred, overlap / n_gold
  return 2 * p * r / (p + r)


def test_lamp2_accuracy_and_f1(tmp_path, capsys):
  rng = random.Random(0)
  labels = list(LAMP2_MOVIE_TAGS)
  golds = [rng.choice(labels) for _ in range(120)]
  preds = [g if rng.random() < 0.5 else rng.choice(labels + ["not a tag"]) for g in golds]
  ids = [str(i) for i in range(len(golds))]
  code, out, _ = _run(capsys, _write(tmp_path / "g.json", "LaMP_2", zip(ids, golds)),
                      _write(tmp_path / "p.json", "LaMP_2", zip(reversed(ids), reversed(preds))))
  got = json.loads(out)
  assert code == 0 and set(got) == {"accuracy", "f1"}
  assert got["accuracy"] == pytest.approx(sum(g == p for g, p in zip(golds, preds)) / 120, abs=3e-3)
  assert got["f1"] == pytest.approx(_f1_by_hand(golds, preds, labels), abs=3e-3)


def test_lamp3_mae_rmse(tmp_path, capsys):
  rng = random.Random(1)
  golds = [rng.randint(1, 5) for _ in range(100)]
  preds = [str(rng.randint(1, 5)) if rng.random() < 0.8 else "no idea" for _ in golds]
  counted = [float(p) if p != "no idea" else (1.0 if abs(1 - g) > abs(5 - g) else 5.0)
             for g, p in zip(golds, preds)]
  ids = [f"q{i}" for i in range(100)]
  code, out, _ = _run(capsys, _write(tmp_path / "g.json", "LaMP_3", zip(ids, map(str, golds))),
                      _write(tmp_path / "p.json", "LaMP_3", zip(ids, preds)))
  got = json.loads(out)
  assert code == 0 and set(got) == {"MAE", "RMSE"}
  assert got["MAE"] == pytest.approx(sum(abs(c - g) for c, g in zip(counted, golds)) / 100,
                                     abs=3e-3)
  assert got["RMSE"] == pytest.approx(
      math.sqrt(sum((c - g) ** 2 for c, g in zip(counted, golds)) / 100), abs=3e-3)


def test_lamp4_rouge(tmp_path, capsys):
  rng = random.Random(2)
  sent = lambda: " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
  golds, preds = [sent() for _ in range(60)], [sent() for _ in range(60)]
  preds[0] = "The Cat, sat!"  # punctuation and case go through the tokenizer
  ids = [str(i) for i in range(60)]
  code, out, _ = _run(capsys, _write(tmp_path / "g.json", "LaMP_4", zip(ids, golds)),
                      _write(tmp_path / "p.json", "LaMP_4", zip(ids, preds)))
  got = json.loads(out)
  assert code == 0 and set(got) == {"rouge-1", "rouge-L"}
  r1 = rl = 0.0
  for g, p in zip(golds, preds):
    gt, pt = _tokens(g), _tokens(p)
    overlap = sum(min(gt.count(w), pt.count(w)) for w in set(gt))
    r1 += _f(overlap, len(pt), len(gt))
    rl += _f(_lcs(gt, pt), len(pt), len(gt))
  assert got["rouge-1"] == pytest.approx(r1 / 60, abs=3e-3)
  assert got["rouge-L"] == pytest.approx(rl / 60, abs=3e-3)


@pytest.mark.parametrize("case,message", [
    ("ids", "mismatched ids"), ("task", "task mismatch"), ("unknown", "unknown task"),
    ("json", "malformed JSON"), ("shape", "'golds'")])
def test_errors_are_one_line(tmp_path, capsys, case, message):
  g = _write(tmp_path / "g.json", "LaMP_1" if case != "unknown" else "LaMP_42",
             [("1", "[1]"), ("2", "[2]")])
  pairs = [("1", "[1]"), ("3", "[2]")] if case == "ids" else [("1", "[1]"), ("2", "[1]")]
  p = _write(tmp_path / "p.json", "LaMP_3" if case == "task" else
             ("LaMP_42" if case == "unknown" else "LaMP_1"), pairs)
  if case == "json":
    (tmp_path / "p.json").write_text('{"task": "LaMP_1", "golds": [')
  if case == "shape":
    (tmp_path / "p.json").write_text('{"task": "LaMP_1"}')
  code, out, err = _run(capsys, g, p)
  assert code != 0 and out == ""
  assert message in err and len(err.strip().splitlines()) == 1
