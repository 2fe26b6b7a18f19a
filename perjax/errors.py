"""Errors a user can cause (bad input, bad config, missing files).

The CLI prints these as one line and exits non-zero; everything else is a bug and keeps its traceback.
"""


class PerjaxError(Exception):
  """A problem with the user's input, named in one line."""


class ConfigError(PerjaxError):
  """An invalid or impossible configuration."""


class DataError(PerjaxError):
  """A malformed or missing data file."""
