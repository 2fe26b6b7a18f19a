"""How a LaMP / LongLaMP profile item becomes a training pair in its task's own format.

LaMP inputs are an instruction followed by the text the answer is about ("... article: TEXT");
a profile item holds such a text and its owner's answer (LaMP-2 news: text and category). The
pair's input is the instruction as the task's own examples spell it (the label list included,
in their order) followed by the item's text; its target is the item's answer. When the
examples do not contain the expected marker (files from another source), the official LaMP
instruction is used (Salemi et al., 2023, "LaMP: When Large Language Models Meet
Personalization", Table 1).

No pair exists for LaMP-1 (a profile item is one of the author's papers; the task's input
needs a second, unrelated reference that the author's own history lacks) nor LaMP-7 (an item
is a tweet with no source text to paraphrase). OPPU (Tan et al., 2024) trains those on
language-model text ("paper title: ...", "tweet: ...") instead, which is not the task's format.

LongLaMP (Kumar et al., 2024) items are told apart by their fields; their inputs also name
things a profile item lacks (the keywords of an abstract), so the pair keeps the instruction
and the item's own slots only.
"""
import collections
import dataclasses

from perjax.data.pairs import FieldPair, SlotPair


@dataclasses.dataclass(frozen=True)
class _Rule:
  marker: str  # where the item's text starts in the task's inputs
  source: str  # the profile field holding that text
  target: str  # the profile field holding the item's answer
  official: str  # the official instruction, "{labels}" for the task's label list


_LAMP2_NEWS = ("Which category does this article relate to among the following categories? "
               "Just answer with the category name without further explanation. "
               "categories: [{labels}] article: ")
_LAMP2_MOVIES = ("Which tag does this movie relate to among the following tags? Just answer "
                 "with the tag name without further explanation. tags: [{labels}] description: ")
_RULES = {
    "LaMP_2-news": _Rule("article: ", "text", "category", _LAMP2_NEWS),
    "LaMP_2-movies": _Rule("description: ", "description", "tag", _LAMP2_MOVIES),
    "LaMP_3": _Rule("review: ", "text", "score",
                    "What is the score of the following review on a scale of 1 to 5? just "
                    "answer with 1, 2, 3, 4, or 5 without further explanation. review: "),
    "LaMP_4": _Rule("article: ", "text", "title", "Generate a headline for the following article: "),
    "LaMP_5": _Rule("paper: ", "abstract", "title",
                    "Generate a title for the following abstract of a paper: "),
    "LaMP_6": _Rule("email: ", "text", "title", "Generate a subject for the following email: "),
}

# LongLaMP: (the profile fields that identify the task, the pair).
_LONGLAMP = (
    ({"reviewText", "overall", "summary", "description"},
     SlotPair('Generate the review text written by a reviewer who has a given an overall rating '
              'of "{overall}" for a product with description "{description}". The summary of '
              'the review text is "{summary}".', "reviewText")),
    ({"title", "abstract"}, SlotPair('Generate an abstract for the title "{title}"', "abstract")),
    ({"summary", "content"}, SlotPair('Generate the content for a reddit post "{summary}"',
                                      "content")),
)


def _instruction(rule: _Rule, inputs, labels) -> str:
  """The text before the item's own in the task's inputs: the commonest one, else the official."""
  heads = collections.Counter(x[:x.find(rule.marker) + len(rule.marker)]
                              for x in inputs if rule.marker in x)
  if heads:
    return heads.most_common(1)[0][0]
  return rule.official.replace("{labels}", ", ".join(labels or ()))


def lamp_profile_pair(task: str, labels, examples, item_fields):
  """Task.profile_pair of a LaMP / LongLaMP task (its canonical name, as lamp_spec gives it),
  from its examples (for the instruction) and the field names of its profile items; None where
  its items form no pair."""
  if task.startswith("LongLaMP"):
    return next((pair for fields, pair in _LONGLAMP if fields <= set(item_fields)), None)
  rule = _RULES.get(task)
  if rule is None:
    return None
  return FieldPair(rule.source, rule.target, prefix=_instruction(rule, (e.input for e in examples),
                                                                  labels),
                   labels=labels)
