"""Mapping free-text answers onto a task's labels."""
from perjax.experiment.predict import to_label

TAGS = ("book", "based on a book", "sci-fi", "comedy")


def test_exact_and_case_insensitive():
  assert to_label(" Comedy. ", TAGS) == "comedy"
  assert to_label("sci-fi", TAGS) == "sci-fi"


def test_first_mentioned_label_longest_on_ties():
  assert to_label("The user's answer is comedy, not sci-fi.", TAGS) == "comedy"
  assert to_label("I'd say based on a book", TAGS) == "based on a book"
  assert to_label("The user chose 4 stars", ("1", "2", "3", "4", "5")) == "4"


def test_no_label_keeps_the_text():
  assert to_label("no idea", TAGS) == "no idea"
  assert to_label("bookish", TAGS) == "bookish"  # whole words only
