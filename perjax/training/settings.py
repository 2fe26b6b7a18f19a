"""The explicit settings the training loop takes. Only the runner reads a whole config
(`from_config`); the loop gets these."""
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
  log_every: int = 10  # steps between fetches of the metrics from the device (all are logged)
  seed: int = 0
  mesh: str = ""  # a sharding.parse_mesh spec over every device ("": data parallel over all)
  max_passes: float = 0.0  # the stage's budget of passes over its examples (0: none)

  @classmethod
  def from_config(cls, config) -> "TrainSettings":
    t = config.train
    return cls(steps=t.steps, batch_size=t.batch_size, seq_len=t.seq_len, optimizer=t.optimizer,
               lr=t.lr, weight_decay=t.get("weight_decay", 0.0),
               grad_clip=t.get("grad_clip", 0.0), schedule=t.get("schedule", "constant"),
               warmup=t.get("warmup", 0), accum=t.accum, checkpoint_every=t.checkpoint_every,
               log_every=t.get("log_every", 10), seed=config.seed, mesh=config.get("mesh", ""),
               max_passes=t.get("max_passes", 0.0))
