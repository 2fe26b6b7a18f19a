"""Personalization data: the schema, the LaMP reader and the registered data set builders.

  from perjax.data import load_dataset
  task = load_dataset("synthetic", split="time", seed=0)
  for ex in task.splits["train"]: ex.input, ex.target, ex.user_id, ex.persona_id, ex.profile
"""
from perjax.data.schema import (PersonalizedExample, PreferenceExample, Profile, ProfileItem,
                                Task, profile_user_id, stable_id)
from perjax.data.catalog import DatasetBuilder, dataset, load_dataset
from perjax.data.files import data_root
from perjax.data.lamp import lamp_spec, load_lamp, read_golds, read_questions
from perjax.data.splits import Record, history_splits
# Importing a builder module registers it in perjax.registry.DATASETS.
from perjax.data import dsp, movielens, persona_chat, studemo, synthetic  # noqa: F401
from perjax.data import lamp_dataset  # noqa: F401
from perjax.data import prism  # noqa: F401

__all__ = ["PersonalizedExample", "PreferenceExample", "Profile", "ProfileItem", "Task",
           "DatasetBuilder", "dataset", "load_dataset", "data_root", "lamp_spec", "load_lamp",
           "read_golds", "read_questions", "Record", "history_splits", "profile_user_id",
           "stable_id"]
