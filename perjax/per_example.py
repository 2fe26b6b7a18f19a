"""What travels with each example besides its own group id, as two typed fields: its group ids
at the other levels personal modules sit at (`level_ids`, {level: [N] ints}: a `lora@persona`
module reads its persona's row) and its modules' per-example inputs (`inputs`, {key: [N, ...]
floats}: `Method.example_inputs`, e.g. history embeddings). The model reads both from one
`level_ids` mapping (`PersonalStack.gather`); `for_model` builds it, and a name used by both
fields is refused when the object is made, so an input can never replace a level's ids."""
import dataclasses

from perjax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class PerExample:
  level_ids: dict = dataclasses.field(default_factory=dict)
  inputs: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    clash = sorted(set(self.level_ids) & set(self.inputs))
    if clash:
      raise ConfigError(f"a method's per-example input {clash[0]!r} is named like the level "
                        f"{clash[0]!r} whose group ids the model also reads; rename the input")

  def __bool__(self) -> bool:
    return bool(self.level_ids or self.inputs)

  def for_model(self) -> dict:
    """The model's `level_ids` mapping: ids as int32, inputs as float32 (`per_example_array`)."""
    from perjax.models.personal import per_example_array
    return {k: per_example_array(v) for k, v in {**self.level_ids, **self.inputs}.items()}
