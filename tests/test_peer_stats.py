"""peer_stats: other users' answers for the same input, and the user's bias, computed by hand."""
import pytest

from perjax.data.pairs import FieldPair
from perjax.data.schema import PersonalizedExample, Profile, ProfileItem
from perjax.errors import ConfigError
from perjax.grouping import GroupingContext
from perjax.pools import Pools
from perjax.prompting import PromptContext
from perjax.registry import GRANULARITIES, METHODS, load_plugins

load_plugins()
PAIR = FieldPair("movie", "rating")
OPTIONS = {"shrink": 2.0, "top": 2, "estimate": False, "round_estimate": False}


def user(name, ratings, target_movie, target):
  items = tuple(ProfileItem(f"{name}-{m}", {"movie": m, "rating": r}, time=float(t))
                for t, (m, r) in enumerate(ratings.items()))
  return PersonalizedExample(f"{name}-ex", name, target_movie, target, Profile(items), time=99.0)


def prompts(examples, pair=PAIR, options=OPTIONS):
  everyone = GRANULARITIES.get("global").fit(examples, GroupingContext(options={}))
  ctx = PromptContext(options=options, split="test", pools=Pools(examples, everyone), pair=pair)
  return METHODS.get("peer_stats").prompt(examples, [e.input for e in examples], ctx)


def test_numeric_answers_give_the_item_mean_and_the_users_bias():
  a = user("a", {"Up": "4", "Heat": "2"}, "Alien", "5")
  b = user("b", {"Up": "2", "Alien": "3"}, "Heat", "1")
  c = user("c", {"Alien": "5", "Heat": "4", "Up": "3"}, "Jaws", "4")
  out = dict(zip("abc", prompts([a, b, c])))
  # Alien: b 3, c 5 -> 2 others, mean 4.0; a's own answer (5, the target) is nowhere
  assert out["a"].startswith("Other users' ratings of this: 2, mean 4.0.\n")
  assert out["a"].endswith("\n\nAlien")
  # pool mean over all 7 answers; a's bias over Up (others: b 2, c 3) and Heat (others: c 4)
  mean = (4 + 2 + 2 + 3 + 5 + 4 + 3) / 7
  shrunk = lambda xs: (sum(xs) + 2.0 * mean) / (len(xs) + 2.0)
  bias = ((4 - shrunk([2, 3])) + (2 - shrunk([4]))) / 2
  assert f"run {abs(bias):.1f} {'above' if bias >= 0 else 'below'}" in out["a"]
  assert "(2 items)" in out["a"]
  assert out["c"].startswith("Other users' ratings of this: 0.\n")  # nobody else rated Jaws
  assert "Estimate" not in out["a"]
  with_sum = dict(zip("abc", prompts([a, b, c], options={**OPTIONS, "estimate": True})))
  assert f"Estimate from these: {shrunk([3, 5]) + bias:.1f}.\n" in with_sum["a"]
  # c's bias: Alien (others: b 3), Heat (a 2), Up (a 4, b 2)
  c_bias = ((5 - shrunk([3])) + (4 - shrunk([2])) + (3 - shrunk([4, 2]))) / 3
  assert f"Estimate from these: {mean + c_bias:.1f}.\n" in with_sum["c"]  # Jaws: the pool mean


def test_the_rounded_estimate_is_the_shown_one_to_a_whole_answer_within_the_pools_range():
  # a's bias: Up (others: b 1) -> 5 - shrunk([1]); Alien (others: b 5, c 5)
  a = user("a", {"Up": "5"}, "Alien", "5")
  b = user("b", {"Up": "1", "Alien": "5"}, "Heat", "1")
  c = user("c", {"Alien": "5", "Heat": "2"}, "Jaws", "4")
  opts = {**OPTIONS, "estimate": True, "round_estimate": True, "shrink": 0.0}
  out = dict(zip("abc", prompts([a, b, c], options=opts)))
  # shrink 0: Alien's mean 5.0, a's bias 5 - 1 = 4 -> 9.0, rounded within the pool's 1..5
  assert "Estimate from these: 9.0 (rounded: 5).\n" in out["a"]
  # b: Heat (others: c 2) -> 2.0; bias over Up (a 5: 1 - 5), Alien (c 5: 0) = -2 -> 0.0 -> 1
  assert "Estimate from these: 0.0 (rounded: 1).\n" in out["b"]
  # c: nobody else rated Jaws: the pool mean (5+1+5+5+2)/5 = 3.6; bias over Alien only (b 5:
  # 0; nobody else has Heat in a profile) -> 3.6 -> 4
  assert "Estimate from these: 3.6 (rounded: 4).\n" in out["c"]
  half = dict(zip("abc", prompts([a, b, c], options={**opts, "shrink": 1.0})))
  shown = float(half["c"].split("Estimate from these: ")[1][:3])
  assert f"(rounded: {min(5, max(1, int(shown + 0.5)))})" in half["c"]


def test_label_answers_are_counted_most_frequent_first():
  a = user("a", {"q1": "red"}, "q2", "blue")
  b = user("b", {"q2": "blue"}, "q1", "red")
  c = user("c", {"q2": "blue", "q1": "green"}, "q3", "red")
  d = user("d", {"q2": "red"}, "q4", "red")
  out = prompts([a, b, c, d])
  assert out[0].startswith("Other users' answers to this: blue (2), red (1).\n")
  assert out[2].startswith("Other users' answers to this: none.\n")


def test_a_task_without_pairs_and_bad_options_are_config_errors():
  a = user("a", {"Up": "4"}, "Alien", "5")
  with pytest.raises(ConfigError, match="profile_pair"):
    prompts([a], pair=None)
  with pytest.raises(ConfigError, match="shrink must be >= 0"):
    prompts([a], options={**OPTIONS, "shrink": -1})
  with pytest.raises(ConfigError, match="estimate must be true or false"):
    prompts([a], options={**OPTIONS, "estimate": "yes"})
  with pytest.raises(ConfigError, match="round_estimate must be true or false"):
    prompts([a], options={**OPTIONS, "estimate": True, "round_estimate": 1})
  with pytest.raises(ConfigError, match="round_estimate .* needs methods.peer_stats.estimate"):
    prompts([a], options={**OPTIONS, "round_estimate": True})
