"""The non-personalized baseline: the example's input, unchanged, for every user."""
from perjax.method import Method, register
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique


def prompt(examples, prompts, ctx):
  return list(prompts)


ZERO_SHOT = register(Method(
    MethodInfo("zero_shot", Technique.PROMPTING, tuple(Granularity), "4.2",
               "non-personalized baseline"),
    prompt=prompt, baseline=True))
