"""The survey's two axes (Zhang et al., arXiv:2411.00027): granularity and technique."""
import enum

from perjax.errors import ConfigError


class Granularity(str, enum.Enum):
  """Whose data shapes the personalization."""
  USER = "user"
  PERSONA = "persona"
  GLOBAL = "global"


class Technique(str, enum.Enum):
  """Where personalization enters the model."""
  PROMPTING = "prompting"
  EMBEDDING = "embedding"
  FINETUNING = "finetuning"


def parse_granularity(value: "str | Granularity") -> Granularity:
  try:
    return Granularity(value)
  except ValueError:
    raise ConfigError(f"unknown granularity {value!r}; choose one of "
                     f"{[g.value for g in Granularity]}") from None


def parse_technique(value: "str | Technique") -> Technique:
  """A Technique; "fine-tuning" and "fine_tuning" (as the survey and README write it) are
  accepted spellings of "finetuning"."""
  if isinstance(value, str) and not isinstance(value, Technique):
    value = value.strip().lower().replace("fine-tuning", "finetuning") \
        .replace("fine_tuning", "finetuning")
  try:
    return Technique(value)
  except ValueError:
    raise ConfigError(f"unknown technique {value!r}; choose one of "
                     f"{[t.value for t in Technique]}") from None
