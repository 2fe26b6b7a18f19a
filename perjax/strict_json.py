"""JSON output that stays JSON: NaN and Infinity are not numbers in the standard, and a metric
that is not finite means a bad input, so it is reported as one line instead of written."""
import json
import math

from perjax.errors import PerjaxError


class NonFiniteValue(PerjaxError):
  """A value to be written as JSON is NaN or infinite."""


def first_non_finite(obj, path: str = ""):
  """(dotted path, value) of the first NaN or infinite float in `obj`, or None."""
  if isinstance(obj, float) and not math.isfinite(obj):
    return path or "value", obj
  if isinstance(obj, dict):
    items = obj.items()
  elif isinstance(obj, (list, tuple)):
    items = enumerate(obj)
  else:
    return None
  for k, v in items:
    found = first_non_finite(v, f"{path}.{k}" if path else str(k))
    if found:
      return found
  return None


def dumps(obj, *, what: str = "output", hint: str = "", **kwargs) -> str:
  """`json.dumps(obj)`, or NonFiniteValue naming the first NaN/infinite value of `obj`."""
  found = first_non_finite(obj)
  if found:
    raise NonFiniteValue(f"{what} {found[0]!r} is {found[1]}, which JSON cannot hold"
                         + (f"; {hint}" if hint else ""))
  return json.dumps(obj, allow_nan=False, **kwargs)
