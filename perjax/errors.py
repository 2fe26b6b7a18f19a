"""Errors a user can cause (bad input, bad config, missing files).

The CLI prints these as one line and exits non-zero; everything else is a bug and keeps its traceback.
"""


class PerjaxError(Exception):
  """A problem with the user's input, named in one line."""


class ConfigError(PerjaxError):
  """An invalid or impossible configuration."""


class DataError(PerjaxError):
  """A malformed or missing data file."""


class TrainingDiverged(PerjaxError):
  """The training loss became NaN or infinite."""

  def __init__(self, step: int, what: str, kept_step: "int | None"):
    kept = (f"checkpoint step {kept_step} is kept" if kept_step is not None
            else "no checkpoint was written")
    super().__init__(f"training stopped: {what} at step {step}; {kept} "
                     "(try a smaller train.lr)")
