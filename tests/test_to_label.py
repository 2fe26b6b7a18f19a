"""Generate-mode answers mapped onto labels: whole answer, then answer cues, then for numeric
labels the first standalone number that is a label; enumerations name nothing."""
import pytest

from perjax.data.lamp import LAMP2_MOVIE_TAGS
from perjax.experiment.predict import to_label

STARS = ("1", "2", "3", "4", "5")


@pytest.mark.parametrize("answer,label", [
    ("4", "4"),
    (" 5. ", "5"),
    ("I'd say 4 stars", "4"),
    ("I would give it 2.", "2"),
    ("Rating: 3", "3"),
    ("On a scale of 1 to 5, I'd rate it 4", "4"),
    ("On a scale of 1 to 5 this one is a 4", "4"),  # the scale's numbers are no answer
    ("4 out of 5", "4"),
    ("4/5", "4"),
    ("4 stars, maybe 5", "4"),  # a bare "stars" after the number is no cue
    ("The user gives 4.0 stars", "4"),
    ("1. The movie is great.\nRating: 5", "5"),
])
def test_rating_answers(answer, label):
  assert to_label(answer, STARS) == label


def test_an_enumeration_of_the_scale_is_no_label():
  # The answer that collapsed onto "1" before: it lists the scale and picks nothing.
  answer = "1. 1\n2. 2\n3. 3\n4. 4\n5. 5"
  assert to_label(answer, STARS) == answer
  assert to_label("1. 1\n2. 2 ...", STARS) not in STARS


def test_numbers_that_are_not_labels_are_skipped():
  assert to_label("3.5 or so, call it 4", STARS) == "4"
  assert to_label("10 out of 10, a 5", STARS) == "5"
  assert to_label("about 7", STARS) == "about 7"


def test_tags_after_a_cue_and_first_mentions():
  assert to_label("Among comedy and action, the answer is action", LAMP2_MOVIE_TAGS) == "action"
  assert to_label("tag: twist ending", LAMP2_MOVIE_TAGS) == "twist ending"
  assert to_label("Dark comedy, I think", LAMP2_MOVIE_TAGS) == "dark comedy"
  assert to_label('"Classic"', LAMP2_MOVIE_TAGS) == "classic"
  assert to_label("1. comedy\n2. action", LAMP2_MOVIE_TAGS) == "1. comedy\n2. action"
  assert to_label("[2]", ("[1]", "[2]")) == "[2]"
  assert to_label("The answer is [1].", ("[1]", "[2]")) == "[1]"
