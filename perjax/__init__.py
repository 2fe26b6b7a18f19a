"""perjax: a JAX research framework for personalizing large language models."""
import os

# transformers is used only for tokenizers, configs and chat templates; its note that PyTorch
# is absent is expected here and would only confuse users.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

__version__ = "0.1.0"
