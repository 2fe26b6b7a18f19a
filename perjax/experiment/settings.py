"""The explicit settings the training loop and the evaluation take. Only the runner reads a whole
config; everything below it gets these."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  steps: int
  batch_size: int
  seq_len: int
  optimizer: str = "adam"
  lr: float = 1e-3
  weight_decay: float = 0.0  # decoupled from the gradient statistics, as AdamW's; 0: none
  grad_clip: float = 0.0  # the gradient's largest global norm; 0: no clipping
  schedule: str = "constant"  # perjax.training.optim.SCHEDULES
  warmup: int = 0
  accum: int = 1
  checkpoint_every: int = 50
  seed: int = 0
  mesh: str = ""  # a sharding.parse_mesh spec over every device ("": one device, no mesh)
  max_passes: float = 0.0  # the stage's budget of passes over its examples (0: none)

  @classmethod
  def from_config(cls, config) -> "TrainSettings":
    t = config.train
    return cls(steps=t.steps, batch_size=t.batch_size, seq_len=t.seq_len, optimizer=t.optimizer,
               lr=t.lr, weight_decay=t.get("weight_decay", 0.0),
               grad_clip=t.get("grad_clip", 0.0), schedule=t.get("schedule", "constant"),
               warmup=t.get("warmup", 0), accum=t.accum, checkpoint_every=t.checkpoint_every,
               seed=config.seed, mesh=config.get("mesh", ""),
               max_passes=t.get("max_passes", 0.0))


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
