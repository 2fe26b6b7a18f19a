"""Profile items as prompt text: one line per item, and the newest items that fit a token
budget.

"Newest" is the end of a pool: pools are ordered oldest first (by item time where the data has
times, e.g. the synthetic task and MovieLens; otherwise in profile order, which loaders keep
oldest first where they know it; persona facts have no order and keep the data's).
"""


def render(item) -> str:
  """`field: value, ...` of the item's non-empty fields."""
  return ", ".join(f"{k}: {v}" for k, v in item.fields.items() if v)


def newest_within(items, header: str, budget: int, tokens) -> tuple[str, int]:
  """(block, n): `header:` then the newest items, newest first, one `- item` line each, as many
  as keep the block within `budget` tokens by `tokens(text)`. ("", 0) when not even one fits.
  The whole block is measured after each line, so the count holds for the text as sent (a
  tokenizer does not add up line by line)."""
  lines, block = [], ""
  for item in reversed(items):
    candidate = f"{header}:\n" + "\n".join(lines + [f"- {render(item)}"])
    if tokens(candidate) > budget:
      break
    lines.append(f"- {render(item)}")
    block = candidate
  return block, len(lines)
