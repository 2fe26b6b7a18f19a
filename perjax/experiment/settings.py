"""The explicit settings the evaluation takes (the training loop's: perjax.training.settings).
Only the runner reads a whole config; everything below it gets these."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  mode: str = "generate"  # or "label_likelihood", "label_median" (experiment/predict.py)
  batch_size: int = 32
  max_new_tokens: int = 8
  num_beams: int = 1  # beam search in generate mode (perjax.beam_search)
  seq_len: int = 128  # preference scoring rows, as in training
  # supervised tasks: each record also gets log p(gold target | prompt) (gold_likelihood.py)
  gold_likelihood: bool = True
  # a method's reward model (`perjax.method.RewardModel`): it scores preference pairs instead
  # of the implicit reward, and reranks sampled candidates under mode "best_of_n"
  reward: object = None
  seed: int = 0

  @classmethod
  def from_config(cls, config) -> "EvalSettings":
    e = config.eval
    return cls(mode=config.predict.mode, batch_size=e.batch_size,
               max_new_tokens=e.max_new_tokens, num_beams=e.get("num_beams", 1),
               seq_len=config.train.seq_len, seed=config.seed,
               gold_likelihood=e.get("gold_likelihood", True))
