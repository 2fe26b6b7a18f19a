"""LaMP registered as a data set: `load_dataset("lamp", path=..., prefix="LaMP_2_")`."""
from perjax.data.catalog import dataset
from perjax.data.files import data_root
from perjax.data.lamp import load_lamp


@dataset("lamp", "user", "official LaMP / LongLaMP files ({prefix}{split}_questions.json, "
         "{prefix}{split}_outputs.json); default: the lamp_tiny LaMP-1 sample",
         split_kinds=("official",))
def lamp(path=None, prefix="LaMP_11_", task=None, split="official"):
  return load_lamp(path if path is not None else data_root() / "lamp_tiny", prefix, task)
