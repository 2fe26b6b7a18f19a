"""`perjax data list` and `perjax data inspect`."""
import json

from perjax.cli import main


def test_list_names_every_builder(capsys):
  assert main(["data", "list", "--json"]) == 0
  names = {r["name"] for r in json.loads(capsys.readouterr().out)}
  assert {"synthetic", "movielens-tagging", "movielens-rating", "persona-chat",
          "dsp-preferences", "studemo", "lamp"} <= names


def test_inspect_synthetic(capsys):
  assert main(["data", "inspect", "synthetic", "--split", "user", "--json"]) == 0
  info = json.loads(capsys.readouterr().out)
  assert info["users"] == 16 and info["personas"] == 4
  assert sum(s["examples"] for s in info["splits"].values()) == info["examples"] == 256
  assert info["profile_size"]["max"] == 24
  assert main(["data", "inspect", "synthetic"]) == 0
  assert "profile size" in capsys.readouterr().out


def test_inspect_bad_split_is_one_line(capsys):
  assert main(["data", "inspect", "synthetic", "--split", "random"]) == 2
  assert "no 'random' split" in capsys.readouterr().err
