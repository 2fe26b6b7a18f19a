"""Prompts and targets to token ids: one way for training rows, preference rows and label
scoring."""
from typing import Sequence

from perjax.prompting import Prompt
from perjax.training import batching


class Codec:
  """Token ids of a run's prompts (chat-formatted, cut to fit the model) and targets (their
  tokens, then EOS: what the LM loss trains and what label scoring compares)."""

  def __init__(self, generator, *, chat: bool = True, max_prompt_tokens: int | None = None):
    self.generator = generator
    self.chat = chat
    self.max_prompt_tokens = max_prompt_tokens or None
    self.eos = list(generator.config.eos_token_ids)[:1]

  def prompt_ids(self, prompts: Sequence[Prompt], *, reserve: int = 0) -> list[list[int]]:
    """`reserve`: room kept for the answer within the model's context."""
    return self.generator.encode_prompts(
        [p.text for p in prompts], chat=self.chat, system=[p.system for p in prompts],
        reserve=reserve, max_tokens=self.max_prompt_tokens)

  def target_ids(self, text: str) -> list[int]:
    return self.generator.tokenizer(text, add_special_tokens=False).input_ids + self.eos

  def supervised_rows(self, prompts: Sequence[Prompt], targets: Sequence[str],
                      seq_len: int) -> list[tuple[list, list]]:
    """(ids, loss_mask) per example: the prompt, then the target; the prompt gives way (from
    its left) when the pair is longer than `seq_len`."""
    return [batching.pack_example(p, self.target_ids(t), seq_len)
            for p, t in zip(self.prompt_ids(prompts), targets)]

  def response_rows(self, prompt_ids: Sequence[list[int]], responses: Sequence[str],
                    seq_len: int) -> list[tuple[list, list]]:
    """(ids, loss_mask) per response after its prompt. A response too long for `seq_len` is
    cut (its first tokens are compared), not the prompt: a preference is conditional on it."""
    rows = []
    for p, text in zip(prompt_ids, responses):
      room = max(seq_len - len(p), seq_len // 2)
      rows.append(batching.pack_example(p, self.target_ids(text)[:room], seq_len))
    return rows
