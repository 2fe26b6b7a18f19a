"""perjax: a JAX research framework for personalizing large language models."""
__version__ = "0.1.0"
