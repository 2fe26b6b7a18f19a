"""LaMP registered as a data set: `load_dataset("lamp", path=..., prefix="LaMP_2_")`."""
from perjax.data.catalog import dataset
from perjax.data.files import data_root
from perjax.data.lamp import load_lamp

# lamp_tiny holds two samples (LaMP_11_, LaMP_22_); the default is the one with a dev split.
TINY_PREFIX = "LaMP_22_"


@dataset("lamp", "user", "official LaMP / LongLaMP files ({prefix}{split}_questions.json, "
         "{prefix}{split}_outputs.json; an empty prefix is found from the file names); "
         "default: the lamp_tiny LaMP-2 sample", split_kinds=("official",))
def lamp(path=None, prefix=None, task=None, split="official"):
  if path is None:
    return load_lamp(data_root() / "lamp_tiny", prefix or TINY_PREFIX, task)
  return load_lamp(path, prefix, task)
