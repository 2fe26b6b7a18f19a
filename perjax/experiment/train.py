"""The training loop of every task kind: batches of encoded rows, the jitted step, progress,
and resumable checkpoints.

The example order of step s depends only on (seed, s), and the step rng is fold_in(seed, s), so a
run resumed from a checkpoint continues exactly as an uninterrupted one would.
"""
import math

import jax
import numpy as np
from tqdm.auto import tqdm

from perjax import checkpoint
from perjax.errors import ConfigError, TrainingDiverged
from perjax.experiment import tracking
from perjax.experiment.settings import TrainSettings
from perjax.models.personal import per_example_array
from perjax.training import optim
from perjax.training.across_processes import AcrossProcesses
from perjax.training.early_stopping import EarlyStop, EarlyStopper, holdout, held_out_loss
from perjax.training.step import init_train_state, make_train_step, merge_model


def step_examples(n: int, step: int, per_step: int, seed: int) -> list[int]:
  """The example indices of `step`: consecutive slices of a fresh permutation per epoch."""
  out = []
  start = step * per_step
  for pos in range(start, start + per_step):
    epoch, offset = divmod(pos, n)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    out.append(int(order[offset]))
  return out


def train(model, rows, group_ids, make_batch, objective, num_groups: int,
          settings: TrainSettings, workdir, *, trainable=None, level_ids=None,
          train_base: bool = False, early_stop: EarlyStop | None = None):
  """Trains `model`'s personal parameters for `settings.steps` steps on `rows` (one per
  example, with its group in `group_ids`; `make_batch(items, seq_len, pad_id, accum)` turns
  `row + (group,)` items into a batch), resuming from the workdir's latest checkpoint. Returns
  the trained model. `trainable` names the personal modules to train (None: all);
  `level_ids` {level: [N] ids} are the examples' groups at the levels other modules sit at;
  `train_base` trains the base weights too (full fine-tuning); `early_stop` holds a slice of
  the rows out and stops by its loss (training/early_stopping.py)."""
  if not len(rows):
    raise ConfigError("this method trains personal parameters, but it has no training examples")
  pad, per_step = model.config.pad_token_id, settings.batch_size * settings.accum
  fit_idx, dev_idx = holdout(len(rows), early_stop.fraction if early_stop else 0.0,
                             settings.seed)
  if not len(dev_idx):  # a single example: nothing to hold out, so no early stopping
    early_stop = None

  def batch_of(idx, accum):
    batch = make_batch([tuple(rows[i]) + (int(group_ids[i]),) for i in idx], settings.seq_len,
                       pad, accum)
    if level_ids:
      batch["level_ids"] = {level: _micro(per_example_array(ids)[idx], accum)
                            for level, ids in level_ids.items()}
    return batch

  batch_at = lambda s: batch_of(fit_idx[step_examples(len(fit_idx), s, per_step, settings.seed)],
                                settings.accum)
  dev = None
  if early_stop:  # the held-out rows in batches of one micro-batch each
    bs = settings.batch_size
    dev = [batch_of(dev_idx[i:i + bs], 1) for i in range(0, len(dev_idx), bs)]
  return fit(model, objective, batch_at, num_groups, settings, workdir, trainable=trainable,
             train_base=train_base, early_stop=early_stop, dev_batches=dev)


def _micro(a, accum: int):
  """[N, ...] -> [accum, N / accum, ...]: ids or per-example inputs split into micro-batches."""
  return a.reshape((accum, -1) + a.shape[1:])


def _all_finite(state) -> bool:
  trained = (state.personal, state.base if state.opt_base is not None else None)
  return all(bool(jax.numpy.isfinite(x).all()) for x in jax.tree.leaves(trained))


def fit(model, objective, batch_at, num_groups: int, settings: TrainSettings, workdir, *,
        trainable=None, train_base: bool = False, early_stop: EarlyStop | None = None,
        dev_batches=None):
  """The training loop: `batch_at(step)` gives step's batch; returns the trained model. With
  `early_stop`, the loss on `dev_batches` decides when to stop and which step to keep."""
  tc = settings
  lr = optim.learning_rate(tc.lr, tc.schedule, tc.steps, tc.warmup)
  tx = optim.make_optimizer(tc.optimizer, lr, weight_decay=tc.weight_decay,
                            grad_clip=tc.grad_clip)
  graphdef, state, personal_tx, base_tx = init_train_state(model, tx, trainable=trainable,
                                                           train_base=train_base)
  spread, step_kwargs = None, {}
  # one SPMD step over a mesh (config.mesh) or every process's devices (jax.distributed)
  if tc.mesh or jax.process_count() > 1:
    spread = AcrossProcesses(state, batch_at(0), tc.mesh)
    state, step_kwargs = spread.state(state), spread.step_kwargs()
  step_fn = make_train_step(graphdef, personal_tx, base_tx, objective, num_groups, **step_kwargs)
  # Restored into the placed state's shardings: a run resumes on another mesh as well.
  # Two kept: when the newest is damaged, restore falls back to the one before it.
  with checkpoint.Checkpoints(workdir, max_to_keep=2, async_save=False) as ckpt:
    state = ckpt.resume(state)
    start = int(state.step)
    key = jax.random.key(tc.seed)
    stopper = None
    if early_stop:
      dev_loss = held_out_loss(graphdef, objective, dev_batches, num_groups, key)
      stopper = EarlyStopper(early_stop, workdir, tc.steps,
                             lambda st: dev_loss(st if spread is None else spread.local(st)))
      stopper.begin(start, state)
    bar = tqdm(range(start, tc.steps), initial=start, total=tc.steps, desc="train",
               dynamic_ncols=True, disable=jax.process_index() != 0)
    for s in bar:
      if stopper is not None and stopper.stopped:
        break
      batch, rng = batch_at(s), jax.random.fold_in(key, s)
      if spread is None:
        state, metrics = step_fn(state, batch, rng)
      else:
        state, metrics = step_fn(state, spread.batch(batch), spread.key(rng))
      loss = float(metrics["loss"])
      if not math.isfinite(loss):  # raised before saving: the last good checkpoint stays
        raise TrainingDiverged(s + 1, f"the loss became {loss}", ckpt.latest_step())
      bar.set_postfix(loss=f"{loss:.3f}")
      tracking.current().scalars(s + 1, {
          "train/loss": loss, "train/learning_rate": float(lr(s) if callable(lr) else lr),
          "train/grad_norm": float(metrics.get("grad_norm", math.nan)),
          "train/groups_present": len(np.unique(batch["group_ids"]))}, folder=workdir)
      if (s + 1) % tc.checkpoint_every == 0 or s + 1 == tc.steps or \
          (stopper is not None and stopper.due(s + 1)):  # an evaluation step is a checkpoint
        if not _all_finite(state):  # an update can overflow after a finite loss
          raise TrainingDiverged(s + 1, "the parameters became non-finite", ckpt.latest_step())
        ckpt.save(state, force=True)
        if stopper is not None:
          stopper.after_checkpoint(s + 1, state)
    if stopper is not None:  # the best evaluation's parameters, not the last ones
      state = stopper.best(state)
  return merge_model(graphdef, state if spread is None else spread.local(state))
