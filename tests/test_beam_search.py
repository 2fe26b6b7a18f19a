"""Beam search on the KV cache against a plain reference: the same search written over lists,
re-running the whole forward pass for every beam and step (no cache, no batching)."""
import numpy as np
import pytest

from perjax.errors import ConfigError
from perjax.generation import Generator, SamplingConfig
from perjax.models import load
from personal_tiny import personal as make_personal, randomize_lora_b


def _log_softmax(x):
  x = x.astype(np.float64) - x.max()
  return x - np.log(np.exp(x).sum())


def reference_beam_search(model, prompt, k, n, eos, alpha=1.0, group=0):
  """The best hypothesis's tokens (see perjax.beam_search for the rules)."""
  beams, done, finished = [([], 0.0)], [], False
  for i in range(n):
    cands = []
    for b, (tokens, total) in enumerate(beams):
      logits = np.asarray(model(np.array([prompt + tokens]), group_ids=np.array([group])))
      logp = _log_softmax(logits[0, -1])
      cands += [(total + lp, b * len(logp) + v, b, v) for v, lp in enumerate(logp)]
    cands.sort(key=lambda c: (-c[0], c[1]))
    top = cands[:k * (1 + len(eos))]
    for rank, (score, _, b, v) in enumerate(top):
      if v in eos and rank < k:
        done.append((score / (i + 1) ** alpha, beams[b][0] + [v]))
    done = sorted(done, key=lambda d: -d[0])[:k]
    beams = [(beams[b][0] + [v], score) for score, _, b, v in top if v not in eos][:k]
    best_alive = max(t for _, t in beams) / (i + 1) ** alpha
    if len(done) == k and best_alive < done[-1][0]:
      finished = True
      break
  if not finished:
    done += [(total / n ** alpha, tokens) for tokens, total in beams]
  return max(done, key=lambda d: d[0])[1]


def _trim(tokens, eos, pad):
  out = []
  for t in tokens:
    out.append(t)
    if t in eos:
      break
  return [t for t in out if t != pad or t in eos]


@pytest.mark.parametrize("beams,alpha", [(2, 1.0), (3, 0.0), (4, 2.0)])
def test_beam_search_matches_the_reference(beams, alpha):
  model, tokenizer = load("tiny-llama", seed=11,
                          personal=make_personal(groups=2, rank=2, prompt_len=2))
  randomize_lora_b(model, seed=1)
  # frequent EOS ids, so hypotheses finish early at different lengths
  eos = (3, 7, 12)
  gen = Generator(model, tokenizer)
  gen.eos_ids = eos
  prompts, groups = [[5, 17, 30, 4], [9, 9, 40], [21, 22]], [0, 1, 1]
  sampling = SamplingConfig(max_new_tokens=5, num_beams=beams, length_penalty=alpha)
  out = gen.generate_ids(prompts, group_ids=groups, sampling=sampling)
  for prompt, group, got in zip(prompts, groups, out):
    want = reference_beam_search(model, prompt, beams, 5, eos, alpha, group)
    assert got == want


def test_one_beam_is_greedy():
  model, tokenizer = load("tiny-llama", seed=3)
  gen = Generator(model, tokenizer, stop_at_eos=False)
  prompts = [[5, 6, 7], [9, 10, 11, 12]]
  greedy = gen.generate_ids(prompts, sampling=SamplingConfig(max_new_tokens=4))
  assert gen.generate_ids(prompts, sampling=SamplingConfig(max_new_tokens=4, num_beams=1)) \
      == greedy


def test_bad_beam_settings_are_one_line_errors():
  with pytest.raises(ConfigError, match="num_beams must be an integer >= 1"):
    SamplingConfig(num_beams=0)
  with pytest.raises(ConfigError, match="beam search .* is deterministic"):
    SamplingConfig(num_beams=2, temperature=0.7)
