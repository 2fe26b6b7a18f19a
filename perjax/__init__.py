"""perjax: a JAX research framework for personalizing large language models.

Importing perjax changes no process-wide setting; the `perjax` command sets its own
(perjax/cli/environment.py).
"""

import sys

__version__ = "0.1.0"

from perjax import shipped as _shipped  # noqa: E402

_shipped.bind_source_folders(sys.modules[__name__])
