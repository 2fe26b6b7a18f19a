"""`perjax evaluate GOLDS.json PREDS.json`: official LaMP metrics as one JSON object.

Both files use the LaMP outputs format {"task": "LaMP_N", "golds": [{"id", "output"}]}.
"""
from perjax import strict_json
from perjax.errors import DataError


def register(subparsers):
  p = subparsers.add_parser("evaluate", help="score LaMP-format predictions against golds")
  p.add_argument("golds", help="gold outputs file (LaMP format)")
  p.add_argument("preds", help="predictions file (LaMP format)")
  p.set_defaults(func=run)


def run(args):
  from perjax.data.lamp import read_golds
  from perjax.metrics import evaluate_lamp
  gold_task, golds = read_golds(args.golds)
  pred_task, preds = read_golds(args.preds)
  if gold_task != pred_task:
    raise DataError(f"task mismatch: {args.golds} is {gold_task!r}, {args.preds} is {pred_task!r}")
  print(strict_json.dumps(evaluate_lamp(gold_task, golds, preds), what="metric",
                          hint="a gold or prediction is not a usable number"))
  return 0
