"""The training loop of every task kind: batches of encoded rows, the jitted step, progress,
and resumable checkpoints.

The example order of step s depends only on (seed, s), and the step rng is fold_in(seed, s), so a
run resumed from a checkpoint continues exactly as an uninterrupted one would.

The host waits for the device only on logging steps (every `log_every` steps) and at
checkpoints: each step's metrics stay on the device until then, and are all written (every
step's loss) when fetched. Batch s+1 is built on a background thread while step s runs.
"""
import concurrent.futures
import math

import jax
import numpy as np
from tqdm.auto import tqdm

from perjax import checkpoint
from perjax.errors import ConfigError, TrainingDiverged
from perjax import tracking
from perjax.training.settings import TrainSettings
from perjax.per_example import PerExample
from perjax.training import optim
from perjax.training.across_processes import AcrossProcesses
from perjax.training.early_stopping import EarlyStop, EarlyStopper, holdout, held_out_loss
from perjax.training.placement import placement
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
          settings: TrainSettings, workdir, *, trainable=None,
          per_example: PerExample | None = None, train_base: bool = False,
          early_stop: EarlyStop | None = None):
  """Trains `model`'s personal parameters for `settings.steps` steps on `rows` (one per
  example, with its group in `group_ids`; `make_batch(items, seq_len, pad_id, accum)` turns
  `row + (group,)` items into a batch), resuming from the workdir's latest checkpoint. Returns
  the trained model. `trainable` names the personal modules to train (None: all);
  `per_example`: the examples' groups at the levels other modules sit at, and their modules'
  inputs; `train_base` trains the base weights too (full fine-tuning); `early_stop` holds a
  slice of the rows out and stops by its loss (training/early_stopping.py)."""
  if not len(rows):
    raise ConfigError("this method trains personal parameters, but it has no training examples")
  pad, per_step = model.config.pad_token_id, settings.batch_size * settings.accum
  model_inputs = per_example.for_model() if per_example else {}
  fit_idx, dev_idx = holdout(len(rows), early_stop.fraction if early_stop else 0.0,
                             settings.seed)
  if not len(dev_idx):  # a single example: nothing to hold out, so no early stopping
    early_stop = None

  def batch_of(idx, accum):
    batch = make_batch([tuple(rows[i]) + (int(group_ids[i]),) for i in idx], settings.seq_len,
                       pad, accum)
    if model_inputs:
      batch["level_ids"] = {k: _micro(v[idx], accum) for k, v in model_inputs.items()}
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


class _Unlogged:
  """Steps whose metrics are still on the device: fetched together, written together, and
  checked for a non-finite loss (the first one found stops the run)."""

  def __init__(self, lr, bar, workdir):
    self.lr, self.bar, self.workdir, self.steps = lr, bar, workdir, []

  def add(self, s: int, metrics, groups_present: int) -> None:
    self.steps.append((s, metrics, groups_present))

  def flush(self, last_checkpoint) -> None:
    fetched = jax.device_get([m for _, m, _ in self.steps])
    for (s, _, groups_present), metrics in zip(self.steps, fetched):
      loss = float(metrics["loss"])
      if not math.isfinite(loss):  # raised before saving: the last good checkpoint stays
        raise TrainingDiverged(s + 1, f"the loss became {loss}", last_checkpoint)
      tracking.current().scalars(s + 1, {
          "train/loss": loss,
          "train/learning_rate": float(self.lr(s) if callable(self.lr) else self.lr),
          "train/grad_norm": float(metrics.get("grad_norm", math.nan)),
          "train/groups_present": groups_present}, folder=self.workdir)
    if self.steps:
      self.bar.set_postfix(loss=f"{loss:.3f}")
    self.steps = []


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
  # one SPMD step over the local devices, a mesh (config.mesh) or every process's devices
  spread: AcrossProcesses | None = placement(state, batch_at(0), tc.mesh)
  step_kwargs = {}
  if spread is not None:
    state, step_kwargs = spread.state(state), spread.step_kwargs()
  step_fn = make_train_step(graphdef, personal_tx, base_tx, objective, num_groups, **step_kwargs)

  def placed_batch(s):  # on the prefetch thread: the host batch, then on its devices
    batch = batch_at(s)
    groups_present = len(np.unique(batch["group_ids"]))
    return (batch if spread is None else spread.batch(batch)), groups_present

  # Restored into the placed state's shardings: a run resumes on another mesh as well.
  # Two kept: when the newest is damaged, restore falls back to the one before it.
  with checkpoint.Checkpoints(workdir, max_to_keep=2, async_save=False) as ckpt, \
      concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="batches") as prefetch:
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
    unlogged = _Unlogged(lr, bar, workdir)
    next_batch = prefetch.submit(placed_batch, start) if start < tc.steps else None
    for s in bar:
      if stopper is not None and stopper.stopped:
        break
      batch, groups_present = next_batch.result()
      if s + 1 < tc.steps:  # built while this step runs
        next_batch = prefetch.submit(placed_batch, s + 1)
      rng = jax.random.fold_in(key, s)
      state, metrics = step_fn(state, batch, rng if spread is None else spread.key(rng))
      unlogged.add(s, metrics, groups_present)
      # an early-stopping evaluation step is a checkpoint step
      saving = (s + 1) % tc.checkpoint_every == 0 or s + 1 == tc.steps or \
          (stopper is not None and stopper.due(s + 1))
      if saving or (s + 1) % tc.log_every == 0:
        unlogged.flush(ckpt.latest_step())
      if saving:
        if not _all_finite(state):  # an update can overflow after a finite loss
          raise TrainingDiverged(s + 1, "the parameters became non-finite", ckpt.latest_step())
        ckpt.save(state, force=True)
        if stopper is not None:
          stopper.after_checkpoint(s + 1, state)
    if stopper is not None:  # the best evaluation's parameters, not the last ones
      state = stopper.best(state)
  return merge_model(graphdef, state if spread is None else spread.local(state))
