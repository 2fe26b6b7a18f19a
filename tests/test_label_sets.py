"""Multi-label tasks (StudEmo): a generated answer reads as the set of labels it names, in the
task's label order, so multi-label F1 sees every label the model said, not just the first."""
import pytest

from perjax.data.studemo import EMOTIONS
from perjax.errors import ConfigError
from perjax.experiment.predict import NO_LABEL, predict_with_scores, to_label_set
from perjax.experiment.settings import EvalSettings
from perjax.metrics import multilabel_f1


@pytest.mark.parametrize("answer,labels", [
    ("disgust, anger", "disgust, anger"),
    ("Anger and disgust.", "disgust, anger"),  # the task's order, not the answer's
    ("joy", "joy"),
    ("I feel joyful", NO_LABEL),  # whole words only
    ("none", NO_LABEL),
    ("", NO_LABEL),
    ("trust, trust, surprise", "trust, surprise"),
])
def test_answer_reads_as_the_set_it_names(answer, labels):
  assert to_label_set(answer, EMOTIONS) == labels


def test_all_named_labels_count_for_f1():
  gold = ["disgust, anger"]
  assert multilabel_f1(gold, [to_label_set("anger, disgust", EMOTIONS)], EMOTIONS) == 1.0


def test_label_ranking_modes_are_refused_for_label_sets():
  settings = EvalSettings(mode="label_likelihood", batch_size=2, max_new_tokens=4, num_beams=1,
                          seed=0)
  with pytest.raises(ConfigError, match="label sets"):
    predict_with_scores(None, None, [], [], EMOTIONS, settings, label_sets=True)
