"""The plugin boundary (DESIGN.md section 3): the core under perjax/ never imports a shipped
plugin package and never names a method or a granularity in code; it learns them from the
registries. Checked over every perjax/*.py with `ast` (docstrings and comments are prose and
not checked).

What counts as naming one:
- an import of `methods`, `granularity`, `experiments` or of the shipped plugin packages
  `perjax.methods` / `perjax.granularities`, also by a string given to `import_module`
  (perjax/registry.py and perjax/shipped.py discover and bind the packages, by package only);
- a string literal equal to a registered method name ("lora", "dpo", ...), or an identifier
  (variable, attribute, argument, function or class name) equal to one, unless a library
  module of that name exists (perjax/modules/lora.py: LoRA is a library piece the `lora`,
  `dpo`, `psoups` and `reward_model` methods build on, and peft's file format holds LoRAs);
- a string literal equal to a registered granularity name ("user", "persona", "global"), or an
  access to a member of the taxonomy's `Granularity` enum (`Granularity.GLOBAL`).

What does not, and why:
- perjax/taxonomy.py defines the survey's two axes: their values are the vocabulary every plugin
  registers on (DESIGN.md section 1), not a use of one.
- Identifiers equal to a granularity name are not checked: the data model has users and
  personas (`user_id`, `persona_id`, a loop's `user`) whatever granularity a run uses.
- The values of a chat message's "role" key ("user" is a chat role).
- Defaults of user-facing settings: an `add_argument(...)` default or choice in perjax/cli/
  (`--method lora`, parsed at the command line) and the base config's defaults in
  perjax/experiment/config.py (`method`, `granularity`). They are settings a user overrides, not
  branches; perjax/cli/export.py builds its granularity flags from the granularity plugins.
- perjax/data/: the built-in data sets are plugins of the dataset registry shipped in the core;
  each declares, as data, the granularity its labels serve and the key its splits group by.
- ALLOWED below: each a label that mirrors something outside perjax, with the reason.
"""
import ast
from pathlib import Path

import pytest

from perjax.registry import GRANULARITIES, METHODS, load_plugins

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "perjax"
PLUGIN_PACKAGES = ("methods", "granularity", "experiments", "perjax.methods",
                   "perjax.granularities")
BINDS_PLUGINS = {"perjax/registry.py", "perjax/shipped.py"}  # discovery by package name
TAXONOMY = "perjax/taxonomy.py"
SETTING_DEFAULTS = {"perjax/experiment/config.py"}
DATA_PLUGINS = "perjax/data/"
ALLOWED = {
    # the record of `perjax bench train` mirrors hf_peft_baseline.py's `--what lora` record
    ("perjax/bench/train.py", "lora"),
}


def core_files():
  return sorted(p for p in CORE.rglob("*.py"))


def rel(path: Path) -> str:
  return path.relative_to(ROOT).as_posix()


def names_of(registry):
  load_plugins()
  return set(registry.names())


def docstrings(tree) -> set[int]:
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
      body = node.body
      if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        out.add(id(body[0].value))
  return out


def library_modules() -> set[str]:
  return {p.stem for p in (CORE / "modules").glob("*.py")}


def imported_by_name(tree) -> set[int]:
  """String constants given to an import function (`importlib.import_module("x")`)."""
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) \
        in ("import_module", "__import__", "find_spec"):
      out.update(id(a) for a in node.args if isinstance(a, ast.Constant))
  return out


def exempt_constants(tree, path: str) -> set[int]:
  """Constants the module docstring's exceptions cover: chat roles, setting defaults."""
  out = docstrings(tree)
  for node in ast.walk(tree):
    if isinstance(node, ast.Dict):
      for key, value in zip(node.keys, node.values):
        if isinstance(key, ast.Constant) and key.value == "role":
          out.add(id(value))
    if isinstance(node, ast.Call) and path.startswith("perjax/cli/") and \
        getattr(node.func, "attr", None) == "add_argument":
      for kw in node.keywords:
        if kw.arg in ("default", "choices"):
          out.update(id(n) for n in ast.walk(kw.value))
    if path in SETTING_DEFAULTS and isinstance(node, ast.Assign):
      out.update(id(n) for n in ast.walk(node.value) if isinstance(n, ast.Constant))
  return out


def identifiers(tree):
  for node in ast.walk(tree):
    if isinstance(node, ast.Name):
      yield node, node.id
    elif isinstance(node, ast.Attribute):
      yield node, node.attr
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      yield node, node.name
    elif isinstance(node, ast.arg):
      yield node, node.arg
    elif isinstance(node, ast.keyword) and node.arg:
      yield node, node.arg


def is_plugin_module(name: str) -> bool:
  return any(name == p or name.startswith(p + ".") for p in PLUGIN_PACKAGES)


def problems_in(path: Path, methods: set, granularities: set) -> list[str]:
  where = rel(path)
  tree = ast.parse(path.read_text(), filename=where)
  exempt, by_name = exempt_constants(tree, where), imported_by_name(tree)
  out = []
  say = lambda node, what: out.append(f"{where}:{getattr(node, 'lineno', '?')}: {what}")
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        if is_plugin_module(a.name):
          say(node, f"imports {a.name}")
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      if is_plugin_module(node.module):
        say(node, f"imports from {node.module}")
      elif node.module == "perjax":
        for a in node.names:
          if is_plugin_module(f"perjax.{a.name}"):
            say(node, f"imports perjax.{a.name}")
    elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in exempt:
      text = node.value
      if id(node) in by_name and is_plugin_module(text) and where not in BINDS_PLUGINS:
        say(node, f"names the plugin module {text!r}")
      if (where, text) in ALLOWED:
        continue
      if text in methods:
        say(node, f"names the method {text!r}")
      if text in granularities and where != TAXONOMY and not where.startswith(DATA_PLUGINS):
        say(node, f"names the granularity {text!r}")
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
        node.value.id == "Granularity" and node.attr.isupper() and where != TAXONOMY:
      say(node, f"names the granularity Granularity.{node.attr}")
  for node, name in identifiers(tree):
    if name in methods - library_modules():
      say(node, f"has an identifier named as the method {name!r}")
  return out


def test_the_core_names_no_plugin():
  methods, granularities = names_of(METHODS), names_of(GRANULARITIES)
  assert {"lora", "ia3", "dpo"} <= methods and {"user", "persona", "global"} <= granularities
  problems = [p for path in core_files() for p in problems_in(path, methods, granularities)]
  assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source, problem", [
    ("from methods.lora import x\n", "imports from methods.lora"),
    ("import perjax.methods.dpo\n", "imports perjax.methods.dpo"),
    ("from perjax import granularities\n", "imports perjax.granularities"),
    ("level = 'global'\n", "names the granularity 'global'"),
    ("if g == Granularity.PERSONA: pass\n", "Granularity.PERSONA"),
    ("m = get('ia3')\n", "names the method 'ia3'"),
    ("def f(ia3): pass\n", "identifier named as the method 'ia3'"),
    ("importlib.import_module('methods.rag')\n", "names the plugin module 'methods.rag'"),
])
def test_the_check_finds_each_kind_of_naming(source, problem):
  found = problems_in_source(source, "perjax/probe.py")
  assert any(problem in p for p in found), found


def problems_in_source(source: str, where: str) -> list[str]:
  """`problems_in` for text at a pretended path (the check of the check)."""
  class Text:
    def read_text(self):
      return source

    def relative_to(self, root):
      return Path(where)
  return problems_in(Text(), names_of(METHODS), names_of(GRANULARITIES))


def test_no_method_file_imports_another():
  shipped = {p.stem for p in (ROOT / "methods").glob("*.py") if p.stem != "__init__"}
  problems = []
  for path in sorted((ROOT / "methods").glob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
          [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
      for mod in mods:
        parts = mod.split(".")
        if (parts[0] == "methods" or parts[:2] == ["perjax", "methods"]) and \
            set(parts) & shipped or (isinstance(node, ast.ImportFrom) and node.level > 0):
          problems.append(f"{path.name} imports {mod}")
  assert not problems, problems


def test_shipped_plugins_live_under_the_perjax_namespace():
  import sys

  import perjax.granularities
  import perjax.methods
  load_plugins()
  assert Path(perjax.methods.__path__[0]).name == "methods"
  assert Path(perjax.granularities.__path__[0]).name == "granularity"
  assert METHODS.get("lora").personal.__module__.startswith("perjax.")
  assert not {"methods", "granularity", "experiments"} & set(sys.modules)
