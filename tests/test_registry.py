"""Registries: duplicates are errors, unknown names suggest near matches, lookup by axis."""
import pytest

from perjax import registry
from perjax.registry import DuplicateNameError, Registry, UnknownNameError
from perjax.taxonomy import Granularity, Technique


def test_duplicate_name_from_another_module_is_an_error():
  r = Registry("thing")
  r.register("alpha", 1, origin="plugins.a")
  with pytest.raises(DuplicateNameError, match="'alpha' is already registered"):
    r.register("alpha", 2, origin="plugins.b")
  assert r.get("alpha") == 1
  r.register("alpha", 3, origin="plugins.a")  # a re-import of the same module replaces it
  assert r.get("alpha") == 3


def test_decorator_and_call_forms_record_the_defining_module():
  r = Registry("thing")

  @r.register("f")
  def f():
    return 1

  assert r.register("g", 2) == 2 and r.get("f") is f
  r.register("f", f)  # this module again: a re-registration, not a clash
  with pytest.raises(DuplicateNameError, match=f"by {__name__}; again by elsewhere"):
    r.register("g", 3, origin="elsewhere")


def test_config_file_registering_a_method_loads_twice(tmp_path):
  # A config file is executed once per sweep run; its registrations must not clash.
  from perjax.experiment import config as cfg
  registry.load_plugins()  # the built-in ones first, so they stay after the test
  file = tmp_path / "cfg_with_method.py"
  file.write_text(
      "from perjax.experiment.config import defaults\n"
      "from perjax.method import Method, register\n"
      "from perjax.registry import MethodInfo\n"
      "from perjax.taxonomy import Granularity, Technique\n"
      "register(Method(MethodInfo('in_config', Technique.PROMPTING, (Granularity.USER,), 'x', "
      "'test'), prompt=lambda e, p, c: p))\n"
      "def get_config(arg=None):\n"
      "  return defaults()\n")
  with registry.METHODS.temporary():
    cfg.load_module(str(file))
    cfg.load_module(str(file))
    assert "in_config" in registry.METHODS
  assert "in_config" not in registry.METHODS


def test_suggest():
  assert registry.suggest("lorra", ["lora", "zero_shot"]) == "; did you mean 'lora'?"
  assert registry.suggest("xyz", ["b", "a"]) == "; known: a, b"
  assert registry.suggest("xyz", ["a"], list_known=False) == ""


def test_every_kind_has_its_registry():
  import perjax.metrics, perjax.retrieval, perjax.training.optim  # noqa: F401,E401
  registry.load_plugins()
  assert {"bm25", "dense", "recency", "random"} <= set(registry.RETRIEVERS)
  assert {"accuracy", "f1", "MAE", "rouge-L"} <= set(registry.METRICS)
  assert {"sgd", "adam", "adamw"} <= set(registry.OPTIMIZERS)
  assert "synthetic" in registry.DATASETS and "persona" in registry.GRANULARITIES


def test_unknown_name_suggests_near_matches():
  r = Registry("thing")
  r.register("soft_prompt", 1)
  r.register("lora", 2)
  with pytest.raises(UnknownNameError) as e:
    r.get("soft_promt")
  assert str(e.value) == "unknown thing 'soft_promt'; did you mean 'soft_prompt'?"
  with pytest.raises(UnknownNameError, match="known: lora, soft_prompt"):
    r.get("xyz")


def test_every_technique_has_a_method_at_every_granularity():
  for t in Technique:
    for g in Granularity:
      methods = registry.methods_for(t, g)
      assert methods, (t, g)
      assert all(m.info.technique == t and g in m.info.granularities for m in methods)


def test_temporary_registrations_are_undone_on_exit():
  r = Registry("thing")
  r.register("kept", 1, origin="plugins.a")
  with r.temporary("brief", 2) as same:
    assert same is r and r.get("brief") == 2
    r.register("kept", 3, origin="plugins.a")  # a replacement inside the block is undone too
  assert r.names() == ["kept"] and r.get("kept") == 1
  with pytest.raises(DuplicateNameError):  # the kept entry's origin came back with it
    r.register("kept", 4, origin="plugins.b")
  with pytest.raises(RuntimeError), r.temporary("failing", 5):
    raise RuntimeError("an error in the block still restores the registry")
  assert "failing" not in r


def test_temporary_registrations_cover_every_registry():
  from perjax.experiment.kinds import TASK_KINDS
  registry.load_plugins()
  before = {r.kind: r.names() for r in (registry.METHODS, registry.DATASETS, TASK_KINDS)}
  with registry.temporary_registrations():
    registry.METHODS.register("scratch_method", object())
    registry.DATASETS.register("scratch_data", object())
    TASK_KINDS.register("scratch_kind", object())
  assert {r.kind: r.names() for r in (registry.METHODS, registry.DATASETS, TASK_KINDS)} == before
