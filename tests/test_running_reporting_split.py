"""Running and reporting are separate sides: no module of the running side (everything under
perjax/ but perjax/reporting/ and the command line, which composes the two) imports the
reporting side, directly or through another perjax module."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTING = "perjax.reporting"
BOUNDARY = ("perjax.cli", "perjax.__main__")


def _modules() -> dict[str, Path]:
  out = {}
  for path in (ROOT / "perjax").rglob("*.py"):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts.pop()
    out[".".join(parts)] = path
  return out


def _inside(name: str, package: str) -> bool:
  return name == package or name.startswith(package + ".")


def _imports(name: str, path: Path, modules) -> set[str]:
  """The perjax modules `name` imports anywhere in its file (function-level imports too)."""
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative: from the package, up level - 1
        parent = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parent + ([base] if base else []))
      out.add(base)
      out |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
  return {m for m in out if m in modules}


def test_the_running_side_never_reaches_the_reporting_side():
  modules = _modules()
  graph = {name: _imports(name, path, modules) for name, path in modules.items()}
  running = [m for m in modules
             if not _inside(m, REPORTING) and not any(_inside(m, b) for b in BOUNDARY)]
  assert "perjax.experiment.runner" in running and "perjax.training.loop" in running
  for start in running:
    seen, todo = {start}, [start]
    while todo:
      for dep in graph[todo.pop()]:
        assert not _inside(dep, REPORTING), f"{start} reaches {dep}"
        if dep not in seen:
          seen.add(dep)
          todo.append(dep)


def test_the_reporting_side_holds_the_reporting_modules():
  modules = _modules()
  for name in ("report", "rereport", "figures", "show", "seeded", "compare", "baseline_report",
               "decision_rules"):
    assert f"{REPORTING}.{name}" in modules
    assert f"perjax.experiment.{name}" not in modules
