"""The adapter bank: users trained through a few device slots follow, bit for bit, the
trajectory of the all-on-device engine (AdamW, per-group step counts included); a fresh bank is
lazy; checkpoints are atomic, write only dirty rows, and a killed run resumes exactly."""
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import bank_tiny
from perjax.bank import store
from perjax.bank.cohort import CohortSampler, to_slots
from perjax.errors import ConfigError

DRIVER = str(Path(__file__).with_name("bank_driver.py"))
STEPS = 7


def _all_on_device(bank, steps):
  """The reference: all USERS rows on the device, starting from the bank's initial rows."""
  state, step, _ = bank_tiny.engine(bank_tiny.USERS)
  personal, opt = bank.layout.trees(bank.init(np.arange(bank_tiny.USERS)))
  state = state.replace(personal=personal, opt_personal=opt)
  for s in range(steps):
    _, batch = bank_tiny.cohort_and_batch(s)  # group ids are user ids
    state, _ = step(state, batch, jax.random.key(s))
  return [np.asarray(x) for x in jax.tree.leaves(state.personal) + jax.tree.leaves(
      state.opt_personal)]


def _assert_same(got, want):
  assert len(got) == len(want)
  for g, w in zip(got, want):
    assert g.dtype == w.dtype and g.shape == w.shape
    np.testing.assert_array_equal(g, w)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """(rows after STEPS steps through the bank, the all-on-device rows, trainer)."""
  trainer = bank_tiny.bank_trainer(tmp_path_factory.mktemp("bank"))
  bank_tiny.train(trainer, 0, STEPS)
  return bank_tiny.all_rows(trainer.bank), _all_on_device(trainer.bank, STEPS), trainer


def test_bank_follows_the_all_on_device_trajectory_bit_for_bit(reference):
  via_bank, on_device, trainer = reference
  _assert_same(via_bank, on_device)
  assert trainer.step_fn._cache_size() == 1  # cohorts of 3 and of 2 users: one compilation
  counts = [x for name, x in zip(trainer.bank.layout.names, via_bank) if name.endswith("count")]
  assert counts and counts[0].max() >= 2  # users came back to a slot with their Adam step count
  seen = {int(u) for s in range(STEPS) for u in bank_tiny.cohort_and_batch(s)[0]}
  assert sorted(np.flatnonzero(counts[0]).tolist()) == sorted(seen)


def test_checkpoint_writes_only_dirty_rows_and_reopens_the_same(reference, tmp_path):
  via_bank, _, trainer = reference
  trainer.checkpoint()
  trainer.bank.wait()
  chunks = list((trainer.bank.directory / "committed" / "c").iterdir())
  counts = next(x for n, x in zip(trainer.bank.layout.names, via_bank) if n.endswith("count"))
  assert len(chunks) == np.count_nonzero(counts) < bank_tiny.USERS  # one chunk per trained user
  reopened = bank_tiny.bank_trainer(trainer.bank.directory).bank
  assert reopened.step == STEPS
  _assert_same(bank_tiny.all_rows(reopened), via_bank)


def test_a_fresh_million_user_bank_is_lazy_and_initialises_on_read(tmp_path):
  state, _, ptx = bank_tiny.engine(bank_tiny.SLOTS)
  bank = bank_tiny.open_bank(tmp_path / "big", state, ptx, users=1_000_000)
  assert bank.bytes_on_disk() < 20_000  # metadata only
  users = np.array([999_999, 3, 500_000])
  rows = dict(zip(bank.layout.names, bank.read(users)))
  a, b = rows["personal/lora/q_a/value"], rows["personal/lora/q_b/value"]
  assert not b.any() and np.all(np.abs(a).max(axis=(1, 2, 3)) > 0)  # LoRA: A random, B zero
  assert not np.array_equal(a[0], a[1])  # each user their own initial A
  again = dict(zip(bank.layout.names, bank.read(users[::-1])))
  np.testing.assert_array_equal(again["personal/lora/q_a/value"][::-1], a)  # a pure function
  assert bank.bytes_on_disk() < 20_000


def test_a_run_killed_between_checkpoints_resumes_exactly(reference, tmp_path):
  via_bank, _, _ = reference
  directory = tmp_path / "killed"
  killed = subprocess.run([sys.executable, DRIVER, str(directory), str(STEPS), "3", "4"],
                          capture_output=True, text=True, timeout=600)
  assert killed.returncode == -9, killed.stderr[-2000:]
  state, _, ptx = bank_tiny.engine(bank_tiny.SLOTS)
  assert bank_tiny.open_bank(directory, state, ptx).step == 3  # step 4's rows were not committed
  resumed = subprocess.run([sys.executable, DRIVER, str(directory), str(STEPS), "3"],
                           capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0 and f"done at {STEPS}" in resumed.stdout, resumed.stderr[-2000:]
  _assert_same(bank_tiny.all_rows(bank_tiny.open_bank(directory, state, ptx)), via_bank)


def test_a_commit_interrupted_after_its_commit_point_is_finished_on_open(reference, tmp_path,
                                                                          monkeypatch):
  trainer = bank_tiny.bank_trainer(tmp_path / "b")
  bank_tiny.train(trainer, 0, 3)
  real = store._write_json

  def die_before_state(path, value):
    if path.name == store.STATE_FILE:
      raise KeyboardInterrupt  # as if killed: commit.json is written, state.json is not
    real(path, value)

  monkeypatch.setattr(store, "_write_json", die_before_state)
  with pytest.raises(KeyboardInterrupt):
    trainer.checkpoint()
  monkeypatch.setattr(store, "_write_json", real)
  assert (trainer.bank.directory / store.COMMIT_FILE).exists()
  reopened = bank_tiny.bank_trainer(trainer.bank.directory)
  assert reopened.bank.step == 3 and not (trainer.bank.directory / store.COMMIT_FILE).exists()
  bank_tiny.train(reopened, 3, STEPS)
  _assert_same(bank_tiny.all_rows(reopened.bank), reference[0])


def test_bad_input_gives_one_line_errors(reference, tmp_path):
  _, _, trainer = reference
  state, _, ptx = bank_tiny.engine(bank_tiny.SLOTS)
  with pytest.raises(ConfigError, match="other num_users"):
    bank_tiny.open_bank(trainer.bank.directory, state, ptx, users=bank_tiny.USERS + 1)
  with pytest.raises(ConfigError, match="not in this step's cohort"):
    to_slots(np.array([[4, 2]]), np.array([2, 5]), 3)
  with pytest.raises(ConfigError, match="slots"):
    to_slots(np.array([1]), np.array([1, 2, 3, 4]), 3)
  with pytest.raises(ConfigError, match="outside"):
    trainer.bank.read([bank_tiny.USERS])
  with pytest.raises(ConfigError, match="users per step"):
    CohortSampler(5, 6)


def test_cohorts_are_distinct_users_and_slots_map_back():
  sampler = CohortSampler(1_000_000, 8, seed=3)
  for step in range(3):
    cohort = sampler.cohort(step)
    assert len(set(cohort.tolist())) == 8 and cohort.max() < 1_000_000
    np.testing.assert_array_equal(sampler.cohort(step), cohort)  # a function of (seed, step)
    ids = np.repeat(cohort[::-1], 2)
    np.testing.assert_array_equal(cohort[to_slots(ids, cohort, 8)], ids)


def test_serving_through_an_lru_cache_matches_all_rows_on_device(reference):
  """Mixed-user batches through a 2-slot cache generate exactly what a model holding all
  USERS rows generates with user ids as group ids."""
  from flax import nnx
  from perjax.bank.cache import BankGenerator
  from perjax.generation import Generator, SamplingConfig
  from perjax.models.llama import Llama
  from perjax.models.personal import Personal
  via_bank, _, trainer = reference
  full = Llama(bank_tiny.CONFIG, personal=bank_tiny.builder(bank_tiny.USERS), rngs=nnx.Rngs(0))
  treedef = jax.tree.structure(nnx.state(full, Personal))
  nnx.update(full, jax.tree.unflatten(treedef, via_bank[:trainer.bank.layout.num_personal]))
  small = Llama(bank_tiny.CONFIG, personal=bank_tiny.builder(2), rngs=nnx.Rngs(0))
  served = BankGenerator(trainer.bank, small, stop_at_eos=False)
  reference_gen = Generator(full, stop_at_eos=False)
  sampling = SamplingConfig(max_new_tokens=4)
  prompts = [[5, 9, 12], [7, 3], [30, 31, 32, 33]]
  outputs = {}
  for users in ([0, 1, 0], [2, 2, 1], [3, 0, 3], [1, 0, 0]):  # hits, misses and evictions
    got = served.generate_ids(prompts, users=users, sampling=sampling)
    want = reference_gen.generate_ids(prompts, group_ids=users, sampling=sampling)
    assert got == want
    outputs.update({(u, i): tuple(o) for i, (u, o) in enumerate(zip(users, got))})
  assert served.cache.loaded == 6  # 0,1 | 2 (evicts 0) | 3, 0 | 1
  assert outputs[(0, 0)] != outputs[(3, 0)] or outputs[(0, 2)] != outputs[(3, 2)]  # users differ
  with pytest.raises(ConfigError, match="2 slots"):
    served.generate_ids(prompts, users=[0, 1, 2], sampling=sampling)


@pytest.mark.slow
def test_bench_creates_then_reuses_a_sparse_bank(tmp_path):
  from perjax.bench.bank import bench_generate_bank, bench_train_bank
  kw = dict(users_total=100_000, users_per_step=2, bank_dir=tmp_path, steps=2, batch=1, seq=8,
            rank=2)
  first = bench_train_bank("tiny-llama", **kw)
  assert first["bank_step"] == 2 and np.isfinite(first["loss"]) and first["tokens_per_s"] > 0
  assert first["bank_bytes"] < 4 * 2 * first["row_bytes"] + 50_000  # trained rows + metadata
  assert first["bank_logical_bytes"] == 100_000 * first["row_bytes"]
  again = bench_train_bank("tiny-llama", **kw)
  assert again["bank_step"] == 4  # continued the same bank
  served = bench_generate_bank("tiny-llama", users_total=100_000, bank_dir=tmp_path, adapters=2,
                               batch=3, prompt_len=5, new_tokens=2, rank=2, repeats=1)
  assert served["rows_loaded"] == 4 and served["tokens_per_s"] > 0
  with pytest.raises(ConfigError, match="other"):
    bench_train_bank("tiny-llama", **{**kw, "rank": 3})
