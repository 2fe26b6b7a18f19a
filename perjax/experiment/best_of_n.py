"""Best-of-n reranking with a method's reward model: `n` responses sampled per prompt, each
scored by the reward model (with the prompt's group's parameters), the highest kept.

The candidates are sampled before training, from the model as it is then: with a reward model
alone (LoRA adapters start at zero) that is exactly the base model, the policy being reranked.
"""
import numpy as np
from tqdm.auto import tqdm

from perjax.bounded_inputs import cap_new_tokens, length_batches
from perjax.generation import SamplingConfig


def _seed(seed: int, k: int) -> int:
  return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def sample(generator, codec, prompts, group_ids, settings, level_ids=None) -> list[list[str]]:
  """`settings.reward.n` sampled responses per prompt (sample k uses its own seed)."""
  reward = settings.reward
  context = generator.config.max_position - generator.prefix_len
  sampling = SamplingConfig(
      max_new_tokens=cap_new_tokens(settings.max_new_tokens, context, context,
                                    name="eval.max_new_tokens"),
      temperature=reward.temperature)
  ids = codec.prompt_ids(prompts, reserve=sampling.max_new_tokens)
  out = [[None] * reward.n for _ in ids]
  batches = length_batches([len(p) for p in ids], settings.batch_size)
  for k in range(reward.n):
    for batch in tqdm(batches, desc=f"sample {k + 1}/{reward.n}", dynamic_ncols=True):
      levels = {l: np.asarray(v)[batch] for l, v in (level_ids or {}).items()}
      outs = generator.generate_ids([ids[i] for i in batch],
                                    group_ids=[group_ids[i] for i in batch], level_ids=levels,
                                    sampling=sampling, seed=_seed(settings.seed, k))
      for i, o in zip(batch, outs):
        out[i][k] = generator.tokenizer.decode(o, skip_special_tokens=True)
  return out


def rerank(generator, codec, prompts, candidates, group_ids, settings, score, level_ids=None):
  """(index of the best candidate per prompt, [N, n] rewards). `score(generator, {key: rows},
  group_ids, settings, level_ids, scorer) -> {key: [M]}` scores response rows (`kinds.score`)."""
  n = len(candidates[0]) if candidates else 0
  prompt_ids = codec.prompt_ids(prompts)
  rows, ids = [], []
  for i, (p, texts) in enumerate(zip(prompt_ids, candidates)):
    rows += codec.response_rows([p] * n, texts, settings.seq_len)
    ids += [i] * n
  ids = np.asarray(ids, np.int64)
  levels = {l: np.asarray(v)[ids] for l, v in (level_ids or {}).items()}
  rewards = score(generator, {"candidates": rows}, np.asarray(group_ids)[ids], settings, levels,
                  settings.reward.score)["candidates"].reshape(len(candidates), n)
  return np.argmax(rewards, axis=1), rewards


def metrics(rewards, best) -> dict:
  """The mean reward of the kept responses, and of a single sample (all candidates' mean)."""
  picked = rewards[np.arange(len(best)), best]
  return {"best_of_n_reward": float(np.mean(picked)),
          "sample_reward": float(np.mean(rewards))}
