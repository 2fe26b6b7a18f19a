"""StudEmo: per-annotator emotion labels. Each annotator is a user whose labels for a text differ
from other annotators'; the profile is their other annotations (PEFT-U style).

The target is the set of emotions the annotator marked, in the fixed order of EMOTIONS, joined by
", " ("none" when they marked none); metrics are exact-match accuracy and multi-label F1.
"""
from perjax.data.catalog import dataset
from perjax.data.files import data_root, read_csv
from perjax.data.pairs import FieldPair
from perjax.data.schema import ProfileItem, Task
from perjax.data.splits import Record, history_splits
from perjax.errors import DataError

EMOTIONS = ("joy", "trust", "anticipation", "surprise", "fear", "sadness", "disgust", "anger")
NONE = "none"


def emotion_target(row: dict, path) -> str:
  try:
    marked = [e for e in EMOTIONS if float(row[e]) > 0]
  except (KeyError, ValueError, TypeError):
    raise DataError(f"{path}: annotation of text {row.get('text_id')!r} lacks 0/1 values for "
                    f"{list(EMOTIONS)}") from None
  return ", ".join(marked) or NONE


@dataset("studemo", "user",
         "an annotator's emotion labels for a text; profile = their other annotations",
         split_kinds=("user", "random"))
def studemo(data_dir=None, split="user", seed=0, max_profile=32, max_chars=None,
            fractions=(0.8, 0.1, 0.1)) -> Task:
  """The data has no times: "random" is a seeded per-annotator holdout (profiles drawn only from
  earlier splits), "user" holds out whole annotators."""
  root = data_root(data_dir) / "studemo"
  tpath, apath = root / "text_data.csv", root / "annotation_data.csv"
  texts = {r["text_id"]: r["text"] for r in read_csv(tpath, header=True, columns=2)}
  records = []
  for i, row in enumerate(read_csv(apath, header=True, columns=12)):
    tid, uid = row["text_id"], row["annotator_id"]
    if tid not in texts:
      raise DataError(f"{apath}: row {i + 2}: text_id {tid} is not in {tpath.name}")
    text = texts[tid] if max_chars is None else texts[tid][:max_chars]
    label = emotion_target(row, apath)
    item = ProfileItem(f"{uid}-{tid}", {"text": text, "emotions": label})
    records.append(Record(id=f"studemo-{uid}-{tid}-{i}", user_id=f"annotator{uid}", input=text,
                          target=label, item=item))
  splits = history_splits(records, by=split, seed=seed, fractions=fractions, causal=False,
                          min_history=1, max_profile=max_profile)
  # An item is (text, the annotator's ", "-joined emotions): the example's own format.
  return Task("studemo", "user", splits, ("accuracy", "multilabel_f1"), EMOTIONS, split,
              "StudEmo per-annotator emotions (multi-label, ', '-joined)",
              profile_pair=FieldPair("text", "emotions"), label_sets=True)
