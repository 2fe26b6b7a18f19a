"""`perjax bench users`: stacked multi-user training trains each user as one-after-another does."""
import json

import jax
import numpy as np
from perjax.bench.users import train_one_after_another, train_stacked
from perjax.cli import main

TINY = dict(model_name="tiny-llama", rank=2)


def test_stacked_steps_give_each_user_the_adapter_it_gets_alone():
  stacked = train_stacked(6, 3, 11, 3, **TINY)  # 6 users, 3 examples each, 2 steps of 3 users
  alone, _, _ = train_one_after_another(stacked["tokens"], stacked["initial"], **TINY)
  table = jax.tree.leaves(stacked["state"].personal)
  initial = jax.tree.leaves(stacked["initial"])
  moved = 0.0
  for u, personal in enumerate(alone):
    for got, want, start in zip(jax.tree.leaves(personal), table, initial):
      np.testing.assert_allclose(np.asarray(got)[0], np.asarray(want)[u], rtol=1e-4, atol=1e-6)
      moved = max(moved, float(np.abs(np.asarray(want)[u] - np.asarray(start)[u]).max()))
  assert moved > 1e-6  # every user was really trained: the comparison has teeth


def test_bench_users_json_and_a_bad_split(capsys):
  code = main(["bench", "users", "--model", "tiny-llama", "--users", "4", "--examples", "2",
               "--users-per-step", "2", "--seq", "9", "--rank", "2", "--loss-chunk", "7",
               "--json"])
  result = json.loads(capsys.readouterr().out)
  assert code == 0 and result["users"] == 4 and result["ratio"] > 0 and result["loss_chunk"] == 7
  assert result["stacked_users_per_s"] > 0 and result["one_after_another_users_per_s"] > 0
  code = main(["bench", "users", "--model", "tiny-llama", "--users", "5", "--users-per-step", "2"])
  err = capsys.readouterr().err
  assert code == 2
  assert "must be a multiple of --users-per-step" in err and len(err.strip().splitlines()) == 1
