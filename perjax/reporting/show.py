"""`perjax show RUN_DIR`: a run's answers beside what was asked and what was expected, from its
predictions.jsonl."""
import json
import shutil
import textwrap
from pathlib import Path

from perjax.errors import ConfigError, PerjaxError


def read_records(run: Path) -> list[dict]:
  path = Path(run) / "predictions.jsonl"
  if not path.is_file():
    raise PerjaxError(f"{run} has no predictions.jsonl (not a finished run?)")
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pick(records: list[dict], user: str | None, n: int) -> list[dict]:
  if n < 1:
    raise ConfigError(f"--n must be at least 1, got {n}")
  if user is not None:
    mine = [r for r in records if r.get("user_id") == user]
    if not mine:
      users = sorted({r.get("user_id") for r in records})
      raise ConfigError(f"user {user!r} has no rows (users: {', '.join(map(str, users[:8]))}"
                        f"{', ...' if len(users) > 8 else ''})")
    records = mine
  return records[:n]


def _column(text, width: int) -> list[str]:
  lines = []
  for para in str(text).splitlines() or [""]:
    lines += textwrap.wrap(para, width) or [""]
  return lines


def side_by_side(columns: dict[str, str], width: int) -> str:
  """Columns of wrapped text with their titles, separated by ' | '; the first (the prompt)
  gets twice the width of the others."""
  share = max(8, (width - 3 * (len(columns) - 1)) // (len(columns) + 1))
  widths = [2 * share] + [share] * (len(columns) - 1)
  cells = [_column(text, w) for text, w in zip(columns.values(), widths)]
  height = max(map(len, cells))
  lines = [" | ".join(t.ljust(w) for t, w in zip(columns, widths)).rstrip(),
           "-+-".join("-" * w for w in widths)]
  for i in range(height):
    lines.append(" | ".join((c[i] if i < len(c) else "").ljust(w)
                            for c, w in zip(cells, widths)).rstrip())
  return "\n".join(lines)


def render(record: dict, index: int, width: int) -> str:
  """One example: its header, then the prompt (with whatever prompting methods put into it)
  beside the raw output, the prediction scored and the target; for preference pairs, beside
  the implicit rewards of the chosen and the rejected response (and a best-of-n answer)."""
  prompt = record.get("prompt", "")
  if record.get("system"):
    prompt = f"[system] {record['system']}\n{prompt}"
  if "chosen_reward" in record:  # preference rows
    right = record["chosen_reward"] > record["rejected_reward"]
    columns = {"prompt": prompt, "chosen reward": f"{record['chosen_reward']:.4f}",
               "rejected reward": f"{record['rejected_reward']:.4f}"}
    if "best_of_n" in record:
      columns["best of n"] = record["best_of_n"]
  else:
    right = str(record.get("prediction")).strip() == str(record.get("target")).strip()
    columns = {"prompt": prompt, "output": record.get("output", ""),
               "prediction": record.get("prediction", ""), "target": record.get("target", "")}
  head = (f"#{index} user {record.get('user_id')} (row {record.get('group')}) "
          f"id {record.get('id')}  ({'correct' if right else 'wrong'})")
  return head + "\n" + side_by_side(columns, width)


def show(run, user: str | None = None, n: int = 5, width: int | None = None) -> str:
  width = width or min(160, shutil.get_terminal_size((120, 20)).columns)
  chosen = pick(read_records(Path(run)), user, n)
  return "\n\n".join(render(r, i + 1, width) for i, r in enumerate(chosen))
