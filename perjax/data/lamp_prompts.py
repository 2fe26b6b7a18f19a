"""LaMP's per-task retrieval texts: the query (the part of an input that describes the item, not
the instruction) and how a retrieved profile item reads in the prompt.

Both follow the LaMP benchmark (Salemi et al., 2023, "LaMP: When Large Language Models Meet
Personalization"): retrieval queries with the task's input text after its instruction, and each
profile item is written into the prompt with the task's per-profile-entry template (the paper's
prompt table), e.g. LaMP-3 `4 is the score for "TEXT"`.
"""
import re
from typing import Callable

from perjax.data.schema import PersonalizedExample, ProfileItem

# where the item's own text starts in each task's input (LaMP-1: its quoted titles instead)
_MARKERS = {"LaMP_2-news": "article: ", "LaMP_2-movies": "description: ", "LaMP_3": "review: ",
            "LaMP_4": "article: ", "LaMP_5": "paper: ", "LaMP_6": "email: ", "LaMP_7": "it: "}
_TEMPLATES = {
    "LaMP_1": '"{title}"',
    "LaMP_2-news": 'the category for the article: "{text}" is "{category}"',
    "LaMP_2-movies": 'the tag for the movie: "{description}" is "{tag}"',
    "LaMP_3": '{score} is the score for "{text}"',
    "LaMP_4": '"{title}" is the title for "{text}"',
    "LaMP_5": '"{title}" is a title for "{abstract}"',
    "LaMP_6": '"{title}" is the subject for "{text}"',
    "LaMP_7": '"{text}"',
}
_QUOTED = re.compile(r'"([^"]*)"')


def lamp_query(task: str) -> Callable[[PersonalizedExample], str] | None:
  """The retrieval query of a LaMP task's examples; None for other tasks (the whole input)."""
  if task == "LaMP_1":  # the two candidate references, after the author's own paper title
    def query(example):
      quoted = _QUOTED.findall(example.input)
      return " ".join(quoted[1:]) if len(quoted) > 1 else example.input
    return query
  marker = _MARKERS.get(task)
  if marker is None:
    return None

  def query(example):
    at = example.input.find(marker)
    return example.input[at + len(marker):] if at >= 0 else example.input
  return query


def lamp_item_text(task: str, item_fields) -> Callable[[ProfileItem], str] | None:
  """How a profile item of a LaMP task reads in a prompt; None for other tasks, or where the
  items lack the template's fields (files from another source)."""
  template = _TEMPLATES.get(task)
  if template is None or not set(re.findall(r"{(\w+)}", template)) <= set(item_fields):
    return None
  return lambda item: template.format(**item.fields)
