"""The shipped plugins' packages, `perjax.methods` and `perjax.granularities`.

Their code lives in the top-level folders methods/ and granularity/ (the design card's layout);
a wheel installs them inside perjax (setup.py). A source checkout has no perjax/methods folder,
so when perjax is imported from one (pytest from the repository root, or an editable install)
the two packages are bound here to the folders beside perjax/. Only these two names under
perjax are touched; nothing process-wide.
"""
import importlib.util
import sys
from pathlib import Path

# package name under perjax -> its folder beside perjax/ (setup.py's PLUGIN_FOLDERS)
PLUGIN_FOLDERS = {"methods": "methods", "granularities": "granularity"}


def bind_source_folders(package) -> None:
  """Makes `perjax.<name>` the folder beside `package` (perjax itself) where it has no
  installed folder of its own."""
  here = Path(package.__file__).resolve().parent
  for name, folder in PLUGIN_FOLDERS.items():
    full = f"{package.__name__}.{name}"
    init = here.parent / folder / "__init__.py"
    if full in sys.modules or (here / name).is_dir() or not init.is_file():
      continue  # already bound, installed from a wheel, or not a source checkout
    spec = importlib.util.spec_from_file_location(
        full, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    spec.loader.exec_module(module)
    setattr(package, name, module)
