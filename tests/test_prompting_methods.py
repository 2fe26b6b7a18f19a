"""The prompting methods contextual, persona_prompt, pag and rewrite: their prompt slots on hand-made
pools, and pag / rewrite end to end on tiny-llama (the conformance test, tests/test_methods.py,
runs every method at every granularity it declares)."""
import json

import pytest

from experiment_tiny import SPEC, TINY
from perjax import experiment
from perjax.data.schema import PersonalizedExample, Profile, ProfileItem
from perjax.models.tiny_tokenizer import byte_tokenizer
from perjax.pools import Pools
from perjax.prompting import Prompt, PromptContext
from perjax.registry import METHODS, load_plugins

load_plugins()
TOKENIZER = byte_tokenizer()


def count_tokens(text):
  return len(TOKENIZER(text, add_special_tokens=False).input_ids)


def example(user, n_items, fields=lambda i: {"topic": f"topic {i}", "choice": "red"}, i=0,
            target="red"):
  items = tuple(ProfileItem(f"{user}-{k}", fields(k), time=float(k)) for k in range(n_items))
  return PersonalizedExample(f"{user}-ex{i}", user, f"question {i} of {user}", target,
                             Profile(items))


def context(examples, options, **fields):
  return PromptContext(options=options, split="test", pools=Pools(examples), **fields)


def run_slot(name, examples, ctx):
  return METHODS.get(name).prompt(examples, [e.input for e in examples], ctx)


# -- contextual --------------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [1, 23, 61, 137, 1000])
def test_contextual_keeps_to_its_budget_newest_first(budget):
  ex = example("u1", 13)
  [text] = run_slot("contextual", [ex], context([ex], {"budget_tokens": budget},
                                                  count_tokens=count_tokens))
  if text == ex.input:  # not even the newest item fits
    assert count_tokens("Past items of this user:\n- topic: topic 12, choice: red") > budget
    return
  block = text[:-len("\n\n" + ex.input)]
  assert text.endswith("\n\n" + ex.input)
  assert count_tokens(block) <= budget
  shown = [int(line.split("topic ")[1].split(",")[0]) for line in block.splitlines()[1:]]
  assert shown == list(range(12, 12 - len(shown), -1))  # the newest, newest first
  if len(shown) < 13:  # and as many as fit: one more would break the budget
    nxt = 12 - len(shown)
    assert count_tokens(block + f"\n- topic: topic {nxt}, choice: red") > budget


def test_contextual_without_a_tokenizer_estimates_three_characters_a_token():
  ex = example("u1", 9)
  [text] = run_slot("contextual", [ex], context([ex], {"budget_tokens": 40}))
  block = text[:-len("\n\n" + ex.input)]
  assert 0 < len(block) <= 120 and "topic 8" in block and "topic 0" not in block


def test_contextual_persona_pool_hides_the_users_own_later_items():
  # u1's example sees only the first 3 of u1's items, though the pool (u1's other example)
  # holds 6: the no-leak rule applies to contextual's pool as to rag's.
  early, late = example("u1", 3, i=0), example("u1", 6, i=1)
  [text] = run_slot("contextual", [early],
                    context([early, late], {"budget_tokens": 500}, count_tokens=count_tokens))
  assert "topic 2" in text and "topic 3" not in text and "topic 5" not in text


# -- persona_prompt ----------------------------------------------------------------------------

def test_persona_prompt_lists_persona_facts_in_the_system_message():
  facts = ["i have two dogs.", "i work as a nurse.", "my favourite food is pizza."]
  ex = PersonalizedExample("d1", "persona-1", "Partner: hi! what do you do?", "i am a nurse.",
                           Profile(tuple(ProfileItem(f"p{i}", {"fact": f})
                                         for i, f in enumerate(facts))), persona_id="persona-1")
  options = METHODS.get("persona_prompt").defaults
  [p] = run_slot("persona_prompt", [ex], context([ex], options, system="Reply as You."))
  assert isinstance(p, Prompt) and p.text == ex.input
  assert p.system.startswith("Reply as You.\n\nFacts about the user")
  assert [l[2:] for l in p.system.splitlines() if l.startswith("- ")] == facts


def test_persona_prompt_names_the_most_frequent_labels_otherwise():
  tags = ["comedy", "drama", "comedy", "horror", "comedy", "drama"]
  fields = lambda k: {"title": f"a long title of film number {k} here", "tag": tags[k]}
  ex = example("u1", 6, fields=fields)
  options = {**METHODS.get("persona_prompt").defaults, "top_values": 2}
  [p] = run_slot("persona_prompt", [ex], context([ex], options))
  assert p.system.splitlines()[-1] == "- tag: comedy (3), drama (2)"
  assert "title" not in p.system  # free text is no label


# -- rewrite: the instruction is chosen by the dev metric -----------------------------------

def test_rewrite_picks_the_instruction_that_scores_best_on_dev(tmp_path):
  instructions = ("say alpha", "say beta", "say gamma")
  # a stand-in model: its rewrite echoes the instruction's last word
  generate = lambda texts, n: [next(w.split()[1] for w in instructions if w in t) for t in texts]
  # a stand-in metric: answers that mention "beta" score best
  score = lambda examples, prompts: sum("beta" in p.text for p in prompts) / len(prompts)
  dev = [example(f"d{k}", 3, i=k) for k in range(5)]
  test = [example("u1", 3)]
  notes = {}
  options = {**METHODS.get("rewrite").defaults, "context": "retrieved", "k": 2,
             "instructions": instructions, "dev_examples": 4, "cache_dir": str(tmp_path)}
  ctx = context(test, options, generate=generate, dev=dev, score=score, notes=notes,
                model="stand-in")
  [text] = run_slot("rewrite", test, ctx)
  assert text == f"beta\n\n{test[0].input}"  # the rewrite, then the input it kept
  assert notes["rewrite_instruction"] == 1 and notes["rewrite_instruction_text"] == "say beta"
  assert notes["rewrite_dev_scores"] == [0.0, 1.0, 0.0]
  assert notes["rewrites_generated"] == 3 * 4 + 1
  notes.clear()  # a second time everything comes from the cache
  assert run_slot("rewrite", test, ctx) == [text]
  assert notes["rewrites_generated"] == 0 and notes["rewrite_instruction"] == 1


# -- end to end on tiny-llama ------------------------------------------------------------------

def tiny_run(method, workdir, granularity="user", **options):
  config = experiment.load_config(SPEC, {**TINY, "method": method, "granularity": granularity,
                                         **{f"methods.{method}.{k}": v
                                            for k, v in options.items()}})
  metrics = experiment.train_and_evaluate(config, workdir)
  rows = [json.loads(l) for l in (workdir / "predictions.jsonl").read_text().splitlines()]
  return metrics, rows


def test_pag_summarizes_once_then_reads_its_cache(tmp_path):
  small = dict(cache_dir=str(tmp_path / "cache"), profile_tokens=80, summary_tokens=6)
  first, rows = tiny_run("pag", tmp_path / "a", **small)
  # the tiny quickstart's profiles are fixed per user: one summary per evaluated user
  assert first["summaries_generated"] == len({r["user_id"] for r in rows}) > 1
  assert all(r["prompt"].startswith("Summary of past items of this user: ") for r in rows)
  second, rows_again = tiny_run("pag", tmp_path / "b", **small)
  assert second["summaries_generated"] == 0
  assert [r["prompt"] for r in rows_again] == [r["prompt"] for r in rows]
  assert json.loads((tmp_path / "b" / "prompting.json").read_text()) == \
      {"summaries_generated": 0}


def test_rewrite_records_its_dev_choice(tmp_path):
  metrics, rows = tiny_run("rewrite", tmp_path / "a", "global", cache_dir=str(tmp_path / "c"),
                           dev_examples=3, summary_tokens=6, rewrite_tokens=6, profile_tokens=80)
  notes = json.loads((tmp_path / "a" / "prompting.json").read_text())
  instructions = METHODS.get("rewrite").defaults["instructions"]
  assert len(notes["rewrite_dev_scores"]) == len(instructions)
  assert notes["rewrite_instruction_text"] == instructions[notes["rewrite_instruction"]]
  assert metrics["rewrite_instruction"] == notes["rewrite_instruction"]
  # every candidate rewrote every dev example (a fresh cache), then the test inputs
  assert metrics["rewrites_generated"] >= len(instructions) * 3 + 1
  assert len(rows) == TINY["data.max_test"]


def test_quickstart_sweep_covers_every_prompting_method_at_each_granularity():
  from experiment_tiny import QUICKSTART
  from perjax.taxonomy import Technique
  runs = [(o["method"], o["granularity"]) for _, o in experiment.sweep_runs(QUICKSTART + ":smoke")]
  wanted = {(name, g.value) for name, m in METHODS.items()
            if m.info.technique == Technique.PROMPTING for g in m.info.granularities}
  assert wanted - {("zero_shot", "user"), ("zero_shot", "persona")} <= set(runs)
  assert {"contextual", "persona_prompt", "pag", "rewrite"} <= {m for m, _ in runs}
  assert len(runs) == len(set(runs))
