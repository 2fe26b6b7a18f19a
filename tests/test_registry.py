"""Registries: duplicates are errors, unknown names suggest near matches, lookup by axis."""
import pytest

from perjax import registry
from perjax.registry import DuplicateNameError, Registry, UnknownNameError
from perjax.taxonomy import Granularity, Technique


def test_duplicate_name_is_an_error():
  r = Registry("thing")
  r.register("alpha", 1)
  with pytest.raises(DuplicateNameError, match="'alpha' is already registered"):
    r.register("alpha", 2)
  assert r.get("alpha") == 1


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
