"""The run tracker: TensorBoard scalars (read back with TensorBoard's own reader), stage
prefixes, and the optional W&B dependency's one-line error."""
import importlib.util

import pytest

from perjax.errors import ConfigError
from perjax import tracking


def read_scalars(folder) -> dict:
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  events = EventAccumulator(str(folder))
  events.Reload()
  return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
          for tag in events.Tags()["scalars"]}


def test_scalars_are_written_and_stages_prefixed(tmp_path):
  with tracking.Tracker(tmp_path) as tracker, tracking.active(tracker):
    tracking.current().scalars(1, {"train/loss": 2.5, "flag": True, "name": "x"},
                               folder=tmp_path)
    tracking.current().scalars(2, {"train/loss": float("nan")})  # dropped, not written
    tracking.current().scalars(1, {"train/loss": 0.75}, folder=tmp_path / "task")
  assert isinstance(tracking.current(), tracking.NoTracker)  # only inside `active`
  scalars = read_scalars(tmp_path / tracking.TENSORBOARD_DIR)
  assert scalars == {"train/loss": [(1, 2.5)], "task/train/loss": [(1, 0.75)]}


def test_tensorboard_can_be_switched_off(tmp_path):
  with tracking.Tracker(tmp_path, tensorboard=False) as tracker:
    tracker.scalars(1, {"train/loss": 1.0})
  assert not (tmp_path / tracking.TENSORBOARD_DIR).exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_wandb_without_the_package_is_a_one_line_error():
  with pytest.raises(ConfigError, match=r"pip install 'perjax\[wandb\]'"):
    tracking.check_wandb("my-project")
  tracking.check_wandb("")  # not asked for: nothing to check
