"""perjax: a JAX research framework for personalizing large language models.

Importing perjax changes no process-wide setting; the `perjax` command sets its own
(perjax/cli/environment.py).
"""

__version__ = "0.1.0"
