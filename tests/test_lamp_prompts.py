"""LaMP fidelity for retrieval: per-task queries (the input's own text, not its instruction),
per-task item templates, and rag's token budget."""
import pytest

from perjax.methods.rag import prompt as rag_prompt, within_budget
from perjax.data.lamp import load_lamp
from perjax.data.lamp_prompts import lamp_item_text, lamp_query
from perjax.data.schema import PersonalizedExample, Profile, ProfileItem
from perjax.pools import Pools
from perjax.prompting import PromptContext

MOVIES = ("Which tag does this movie relate to among the following tags? Just answer with the "
          "tag name without further explanation. tags: [comedy, sci-fi] description: ")


def _example(text, items):
  return PersonalizedExample("q1", "u1", MOVIES + text, "sci-fi", Profile(tuple(items)))


def test_query_is_the_input_text_after_the_instruction():
  ex = _example("aliens land on a farm", [])
  assert lamp_query("LaMP_2-movies")(ex) == "aliens land on a farm"
  lamp1 = PersonalizedExample(
      "q", "u", 'For an author who has written the paper with the title "Deep nets", which '
      'reference is related? Just answer with [1] or [2] without explanation. '
      '[1]: "Graph kernels" [2]: "Protein folding"', "[1]")
  assert lamp_query("LaMP_1")(lamp1) == "Graph kernels Protein folding"
  assert lamp_query("movielens-rating") is None  # other tasks query with the whole input
  # an input without the marker (files from elsewhere) is its own query
  assert lamp_query("LaMP_3")(_example("", [])) == MOVIES


def test_item_templates_follow_the_task():
  item = ProfileItem("p", {"text": "loved it", "score": "5"})
  assert lamp_item_text("LaMP_3", item.fields)(item) == '5 is the score for "loved it"'
  assert lamp_item_text("LaMP_3", {"review"}) is None  # the template's fields are missing
  assert lamp_item_text("synthetic", item.fields) is None


def test_rag_retrieves_by_the_query_and_renders_the_template():
  # the decoy shares the instruction's words, the match shares the movie's
  decoy = ProfileItem("d", {"description": "which tag does this movie relate to among the "
                                           "following tags just answer", "tag": "comedy"})
  match = ProfileItem("m", {"description": "aliens land on a farm at night", "tag": "sci-fi"})
  ex = _example("aliens land on a farm", [decoy, match])
  template = lamp_item_text("LaMP_2-movies", match.fields)
  ctx = lambda **kw: PromptContext(options={"retriever": "bm25", "k": 1, **kw}, split="test",
                                   pools=Pools([ex]), query=lamp_query("LaMP_2-movies"),
                                   item_text=template)
  text = rag_prompt([ex], [ex.input], ctx())[0]
  assert '- the tag for the movie: "aliens land on a farm at night" is "sci-fi"' in text
  assert "decoy" not in text and "just answer\" is" not in text
  # without the task's query, the instruction's words pull the decoy up
  plain = PromptContext(options={"retriever": "bm25", "k": 1}, split="test", pools=Pools([ex]))
  assert "which tag does this movie" in rag_prompt([ex], [ex.input], plain)[0]


def test_budget_keeps_the_best_items_that_fit():
  count = lambda s: len(s.split())
  lines = ["a b c", "d e", "f g h i", "j"]
  assert within_budget(lines, 0, count) == lines
  assert within_budget(lines, 5, count) == ["a b c", "d e"]
  assert within_budget(lines, 2, count) == []
  ex = _example("x", [ProfileItem(f"p{i}", {"description": f"x word{i} " * 5, "tag": "comedy"})
                      for i in range(4)])
  ctx = PromptContext(options={"retriever": "bm25", "k": 4, "budget_tokens": 30},
                      split="test", pools=Pools([ex]), count_tokens=count)
  listing = [l for l in rag_prompt([ex], [ex.input], ctx)[0].splitlines() if l.startswith("- ")]
  assert 0 < len(listing) < 4 and sum(count(l) for l in listing) <= 30


@pytest.mark.parametrize("prefix,opening", [("LaMP_22_", "the "), ("LaMP_11_", '"')])
def test_lamp_tiny_reads_with_its_query_and_template(shared_data, prefix, opening):
  task = load_lamp(shared_data / "lamp_tiny", prefix=prefix)
  ex = task.splits["train"][0]
  assert task.query is not None and task.query(ex) and len(task.query(ex)) < len(ex.input)
  assert task.item_text is not None and task.item_text(ex.profile.items[0]).startswith(opening)
