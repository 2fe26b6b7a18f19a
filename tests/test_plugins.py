"""Plugins from outside the repository (config.plugins) under `perjax run` and `perjax sweep`,
and sweeps that check every run before the first one starts (`--dry-run`)."""
import json
import sys

import pytest

from experiment_tiny import QUICKSTART, SPEC, cli_overrides
from perjax import experiment
from perjax.cli import main
from perjax.errors import ConfigError
from perjax.experiment.options import check_run
from perjax.method import Method, register
from perjax.registry import (MethodInfo, import_plugins, load_plugins,
                             temporary_registrations)
from perjax.taxonomy import Granularity, Technique

PLUGIN = '''"""A prompting method defined outside the repository: recent pool items as the system
message."""
from perjax.method import Method, register
from perjax.prompting import Prompt
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique


def prompt(examples, prompts, ctx):
  out = []
  for example, text in zip(examples, prompts):
    items = ctx.pool(example)[-int(ctx.options["n"]):]
    history = "; ".join(it.text for it in items)
    out.append(Prompt(text, system=f"{ctx.system} {ctx.pool_header(example)}: {history}"))
  return out


register(Method(MethodInfo("outside_history", Technique.PROMPTING, tuple(Granularity), "4.2",
                           "a test plugin"), prompt=prompt, defaults={"n": 2}))
'''

SWEEP_CONFIG = """
import importlib.util
spec = importlib.util.spec_from_file_location("qs", {quickstart!r})
qs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(qs)

def get_config(arg=None):
  c = qs.get_config(arg)
  c.plugins = {plugins!r}
  return c

def sweep(add):
{adds}
"""


@pytest.fixture
def scoped_registries():
  """Plugins registered by a test stay in it."""
  load_plugins()  # the built-in ones first, so they stay
  before = set(sys.modules)
  with temporary_registrations():
    yield
  for name in set(sys.modules) - before:
    if name.startswith(("outside_plugin", "perjax_plugin_outside")):
      del sys.modules[name]


def _sweep_file(tmp_path, adds, plugins=()):
  path = tmp_path / "tiny_sweep.py"
  body = "\n".join(f"  add({a})" for a in adds)
  path.write_text(SWEEP_CONFIG.format(quickstart=QUICKSTART, plugins=list(plugins), adds=body))
  return f"{path}:smoke,model=tiny-llama"


def _rows(workdir):
  return [json.loads(l) for l in (workdir / "predictions.jsonl").read_text().splitlines()]


def test_outside_method_runs_under_run_and_sweep(tmp_path, monkeypatch, scoped_registries):
  plugin_dir = tmp_path / "elsewhere"
  plugin_dir.mkdir()
  (plugin_dir / "outside_plugin.py").write_text(PLUGIN)
  monkeypatch.syspath_prepend(str(plugin_dir))

  # run: the module named on the command line, its option set there too
  work = tmp_path / "run"
  args = cli_overrides({"method": "outside_history", "plugins": "outside_plugin",
                        "methods.outside_history.n": 3})
  assert main(["run", SPEC, "--workdir", str(work), *args]) == 0
  rows = _rows(work)
  assert all(r["system"].startswith("Answer with one of the options. Past items of this user: ")
             and r["system"].count(";") == 2 and r["prompt"].endswith("\nchoice:") for r in rows)
  assert json.loads((work / "config.json").read_text())["plugins"] == ["outside_plugin"]

  # sweep: the config file names a plugin by its path; every run loads the config again
  file = plugin_dir / "outside_plugin_file.py"
  file.write_text(PLUGIN.replace("outside_history", "outside_file"))
  spec = _sweep_file(tmp_path, ['method="outside_file", granularity="user"',
                                'method="outside_file", granularity="global"'],
                     plugins=[str(file)])
  out = tmp_path / "sweep"
  assert main(["sweep", spec, "--workdir", str(out), *cli_overrides()]) == 0
  rows = _rows(out / "method=outside_file,granularity=global")
  assert all("Past items of all users: " in r["system"] for r in rows)
  # the same file named by module and by path is imported once
  import_plugins(["outside_plugin", str(plugin_dir / "outside_plugin.py")])


def test_missing_plugin_is_one_line(tmp_path, capsys):
  args = cli_overrides({"plugins": "no_such_plugin_module"})
  assert main(["run", SPEC, "--workdir", str(tmp_path / "w"), *args]) == 2
  assert "plugin module 'no_such_plugin_module' not found" in capsys.readouterr().err
  assert not (tmp_path / "w").exists()


def test_dry_run_lists_and_checks_every_run_and_writes_nothing(tmp_path, capsys):
  work = tmp_path / "qs"
  assert main(["sweep", QUICKSTART + ":smoke", "--dry-run", "--workdir", str(work)]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == 'method=zero_shot,granularity=global\t{"method": "zero_shot", ' \
                     '"granularity": "global"}'
  # (which runs: tests/test_prompting_methods.py, the quickstart covers every prompting method)
  assert len(lines) > 11 and lines[-1].startswith(f"{len(lines) - 1} runs, all valid")
  assert not work.exists()


@pytest.mark.parametrize("dry_run", [True, False])
def test_impossible_run_fails_before_the_first_run(tmp_path, capsys, dry_run):
  spec = _sweep_file(tmp_path, ['method="zero_shot", granularity="global"',
                                'method="rag+rag", granularity="user"'])
  work = tmp_path / "sweep"
  flags = ["--dry-run"] if dry_run else []
  assert main(["sweep", spec, "--workdir", str(work), *flags, *cli_overrides()]) == 2
  err = capsys.readouterr().err
  assert "sweep run 'method=rag+rag,granularity=user': method 'rag' appears twice" in err
  assert not work.exists()  # the valid first run never started


def test_check_run_names_a_missing_option_block(scoped_registries):
  config = experiment.load_config(SPEC)
  # a plugin registered after the config was built: its block is missing
  register(Method(MethodInfo("late_method", Technique.PROMPTING, (Granularity.USER,), "x",
                             "test"), prompt=lambda e, p, c: p, defaults={"k": 1}))
  with config.unlocked():
    config.method = "late_method"
  with pytest.raises(ConfigError, match="config.methods has no block 'late_method': name the "
                     "module that registers it in config.plugins"):
    check_run(config)
  with config.unlocked():
    config.method, config.granularity = "zero_shot", "planet"
  with pytest.raises(ConfigError, match="unknown granularity 'planet'"):
    check_run(config)


GRANULARITY_PLUGIN = '''"""A granularity defined outside the repository: users grouped by their id's first letter."""
from perjax.grouping import Grouping, Groups, PoolPolicy, register
from perjax.taxonomy import Granularity

POOL = PoolPolicy(key=lambda example, group: group,
                  header=lambda key: f"Past items of cohort {key}")


def fit(train, ctx):
  letters = sorted({e.user_id[0] for e in train})
  known = {e.user_id: letters.index(e.user_id[0]) for e in train}
  return Groups(num_groups=len(letters), pool=POOL, known=known,
                assign_unseen=lambda examples: {e.user_id: 0 for e in examples},
                names=tuple(letters))


register(Grouping("cohort", Granularity.PERSONA, fit, description="by first letter"))
'''


def test_a_new_granularity_is_one_file(tmp_path, scoped_registries):
  file = tmp_path / "outside_cohort.py"
  file.write_text(GRANULARITY_PLUGIN)
  work = tmp_path / "run"
  args = cli_overrides({"method": "rag", "granularity": "cohort", "plugins": str(file)})
  assert main(["run", SPEC, "--workdir", str(work), *args]) == 0
  assert all(r["prompt"].startswith("Past items of cohort 0:\n") for r in _rows(work))


def test_the_documented_prompting_method_runs(tmp_path, scoped_registries):
  # docs/adding_a_method.md's worked example, exactly as written there, as a plugin file
  from pathlib import Path
  doc = (Path(__file__).resolve().parents[1] / "docs" / "adding_a_method.md").read_text()
  code = doc.split("`methods/recent.py`:\n\n```python\n", 1)[1].split("```", 1)[0]
  file = tmp_path / "recent_from_docs.py"
  file.write_text(code)
  work = tmp_path / "run"
  args = cli_overrides({"method": "recent", "granularity": "global", "plugins": str(file),
                        "methods.recent.n": 2, "methods.recent.as_system": "true"})
  assert main(["run", SPEC, "--workdir", str(work), *args]) == 0
  for r in _rows(work):
    assert r["system"].startswith("Answer with one of the options.\n\nPast items of all users:\n")
    assert r["system"].count("\n- ") == 2 and r["prompt"].startswith("Topic: ")
