"""Profile items as training pairs: the callables builders put on `Task.profile_pair`.

Each maps one ProfileItem to (input, target) in its task's own format, or None where the item
cannot form a pair (a missing field, a target outside the task's labels). They are plain frozen
dataclasses, not closures, so a Task stays picklable and comparable.
"""
import dataclasses
import string

from perjax.data.schema import ProfileItem


def as_label(text: str, labels: tuple[str, ...] | None) -> str | None:
  """`text` as one of `labels`: itself, or the label of the same number ("4.0" -> "4" on a
  rating scale); None when it names none. Without labels, any non-empty text."""
  text = text.strip()
  if labels is None:
    return text or None
  if text in labels:
    return text
  try:
    value = float(text)
  except ValueError:
    return None
  return next((l for l in labels if _number(l) == value), None)


def _number(label: str) -> float | None:
  try:
    return float(label)
  except ValueError:
    return None


@dataclasses.dataclass(frozen=True)
class FieldPair:
  """input = prefix + the item's `source` field (prefix alone when `source` is None) + suffix;
  target = its `target` field, which must be one of `labels` when they are given."""
  source: str | None
  target: str
  prefix: str = ""
  suffix: str = ""
  labels: tuple[str, ...] | None = None

  def __call__(self, item: ProfileItem) -> tuple[str, str] | None:
    target = as_label(str(item.fields.get(self.target, "")), self.labels)
    if target is None:
      return None
    if self.source is None:
      return self.prefix + self.suffix, target
    source = str(item.fields.get(self.source, "")).strip()
    if not source:
      return None
    return self.prefix + source + self.suffix, target


@dataclasses.dataclass(frozen=True)
class SlotPair:
  """input = `template` with the item's fields filled in by name ({title}, {overall}); None when
  a named field is missing or empty. target = its `target` field."""
  template: str
  target: str

  def __call__(self, item: ProfileItem) -> tuple[str, str] | None:
    values = {k: str(v).strip() for k, v in item.fields.items()}
    slots = [name for _, name, _, _ in string.Formatter().parse(self.template) if name]
    if not values.get(self.target) or not all(values.get(s) for s in slots):
      return None
    return self.template.format_map(values), values[self.target]
