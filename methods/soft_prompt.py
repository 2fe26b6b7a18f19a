"""Per-group soft prompts: `length` learned vectors prepended to the input embeddings, one set per
group (a user, a persona, or the one global group), trained with the LM loss on the targets."""
from perjax.method import Method, register
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique


def personal(options):
  return {"prompt_len": int(options["length"])}


SOFT_PROMPT = register(Method(
    MethodInfo("soft_prompt", Technique.EMBEDDING, tuple(Granularity), "4.3",
               "per-user soft prompts / user embeddings (e.g. UEM, PERSOMA)"),
    personal=personal, defaults={"length": 8}))
