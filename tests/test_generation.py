"""Generation on a tiny model: greedy equals the full-forward argmax, sampling filters, EOS,
determinism, and no recompilation for prompts in the same length bucket."""
import jax
import numpy as np
import pytest

from perjax import generation
from perjax.errors import ConfigError
from perjax.generation import Generator, SamplingConfig
from perjax.models import load
from personal_tiny import personal as make_personal, randomize_lora_b


@pytest.fixture(scope="module")
def tiny():
  model, tokenizer = load("tiny-llama", seed=3)
  return model, tokenizer, Generator(model, tokenizer, stop_at_eos=False)


def _argmax_loop(model, prompt, n):
  seq = list(prompt)
  for _ in range(n):
    logits = np.asarray(model(np.array([seq])))
    seq.append(int(logits[0, -1].argmax()))
  return seq[len(prompt):]


def test_greedy_matches_full_forward_for_prompts_of_different_lengths(tiny):
  model, _, gen = tiny
  prompts = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15], [40]]
  out = gen.generate_ids(prompts, sampling=SamplingConfig(max_new_tokens=6))
  for prompt, got in zip(prompts, out):
    assert got == _argmax_loop(model, prompt, 6)


def test_top_k_one_and_tiny_top_p_are_greedy(tiny):
  _, _, gen = tiny
  prompts = [[5, 6, 7], [20, 21]]
  greedy = gen.generate_ids(prompts, sampling=SamplingConfig(max_new_tokens=5))
  top1 = gen.generate_ids(prompts, sampling=SamplingConfig(5, temperature=1.0, top_k=1), seed=7)
  nucleus = gen.generate_ids(prompts, sampling=SamplingConfig(5, temperature=1.0, top_p=1e-6),
                             seed=7)
  assert top1 == greedy and nucleus == greedy


def test_sampling_is_deterministic_per_seed_and_varies_across_seeds(tiny):
  _, _, gen = tiny
  prompts = [[5, 6, 7]] * 4
  s = SamplingConfig(max_new_tokens=12, temperature=1.5)
  a = gen.generate_ids(prompts, sampling=s, seed=1)
  b = gen.generate_ids(prompts, sampling=s, seed=1)
  c = gen.generate_ids(prompts, sampling=s, seed=2)
  assert a == b
  assert a != c


def test_top_k_restricts_to_the_k_most_likely_tokens():
  logits = jax.numpy.array([[0.0, 3.0, 1.0, 2.0, -1.0]])
  filtered = generation._filter_logits(logits, SamplingConfig(temperature=1.0, top_k=2))
  assert np.isfinite(np.asarray(filtered)).tolist() == [[False, True, False, True, False]]
  filtered = generation._filter_logits(logits, SamplingConfig(temperature=1.0, top_p=0.7))
  # probabilities ~ [.03, .64, .09, .24, .01]: .64 < .7, so the top two stay
  assert np.isfinite(np.asarray(filtered)).tolist() == [[False, True, False, True, False]]


def test_rows_stop_at_eos_independently(tiny):
  model, tokenizer, _ = tiny
  free = Generator(model, tokenizer, stop_at_eos=False).generate_ids(
      [[5, 6, 7], [30, 31]], sampling=SamplingConfig(max_new_tokens=8))
  # declare the 3rd token row 0 produces to be EOS: row 0 stops there, row 1 is unaffected
  eos = free[0][2]
  stopper = Generator(model, tokenizer)
  stopper.eos_ids = (eos,)
  out = stopper.generate_ids([[5, 6, 7], [30, 31]], sampling=SamplingConfig(max_new_tokens=8))
  cut = lambda row: row[:row.index(eos) + 1] if eos in row else row
  assert out[0] == cut(free[0]) and len(out[0]) <= 3
  assert out[1] == cut(free[1])


def test_same_bucket_and_batch_do_not_recompile(tiny):
  _, _, gen = tiny
  s = SamplingConfig(max_new_tokens=4)
  gen.generate_ids([[1, 2, 3], [4, 5]], sampling=s)
  before = generation._generate._cache_size()
  gen.generate_ids([[7, 8, 9, 10, 11], [12]], sampling=s)
  gen.generate_ids([[3] * 20, [4] * 31], sampling=s)
  assert generation._generate._cache_size() == before


def test_chat_prompts_and_text_round_trip(tiny):
  _, tokenizer, gen = tiny
  ids = gen.encode_prompts(["hello"])[0]
  assert tokenizer.decode(ids).endswith("assistant: ")
  out = gen.generate(["hello"], sampling=SamplingConfig(max_new_tokens=3))
  assert isinstance(out[0], str)


def test_bad_inputs_raise_clear_errors(tiny):
  _, _, gen = tiny
  with pytest.raises(ConfigError, match="empty prompt"):
    gen.generate_ids([[]])
  with pytest.raises(ConfigError, match="max_new_tokens"):
    SamplingConfig(max_new_tokens=0)


def test_mixed_groups_in_one_batch_equal_each_group_alone():
  model, tokenizer = load("tiny-llama", seed=5,
                          personal=make_personal(groups=3, rank=2, prompt_len=2))
  randomize_lora_b(model, seed=0)
  gen = Generator(model, tokenizer, stop_at_eos=False)
  prompts = [[5, 6, 7], [9, 10], [11, 12, 13, 14], [5, 6, 7]]
  groups = [0, 1, 2, 2]
  s = SamplingConfig(max_new_tokens=5)
  mixed = gen.generate_ids(prompts, group_ids=groups, sampling=s)
  alone = [gen.generate_ids([p], group_ids=[g], sampling=s)[0] for p, g in zip(prompts, groups)]
  assert mixed == alone
  assert mixed[0] != mixed[3]  # same prompt, different group: personalization shows


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_personalized_generation_matches_the_full_forward(lora_rank):
  """Cached decoding (unrolled per-layer weights, soft prompt and adapters per row) equals
  re-running the whole forward pass for each token; a soft prompt alone included."""
  model, tokenizer = load("tiny-llama", seed=7,
                          personal=make_personal(groups=2, rank=lora_rank, prompt_len=3))
  randomize_lora_b(model, seed=0)
  gen = Generator(model, tokenizer, stop_at_eos=False)
  prompts, groups = [[5, 17, 30, 4], [9, 9, 40]], [0, 1]
  out = gen.generate_ids(prompts, group_ids=groups, sampling=SamplingConfig(max_new_tokens=6))
  for prompt, group, got in zip(prompts, groups, out):
    seq = list(prompt)
    for _ in range(6):
      logits = np.asarray(model(np.array([seq]), group_ids=np.array([group])))
      seq.append(int(logits[0, -1].argmax()))
    assert got == seq[len(prompt):]
