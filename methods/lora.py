"""Per-group LoRA adapters on the chosen projections; at user granularity this is OPPU's
personal PEFT (combine with `rag` for the full OPPU recipe, `rag+lora`)."""
from perjax.errors import ConfigError
from perjax.method import Method, register
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique


def personal(options):
  rank = int(options["rank"])
  if rank < 1:
    raise ConfigError(f"lora.rank must be >= 1, got {rank}")
  targets = tuple(t.strip() for t in str(options["targets"]).split(",") if t.strip())
  alpha = float(options["alpha"]) if options["alpha"] else None
  return {"lora_rank": rank, "lora_alpha": alpha, "lora_targets": targets}


LORA = register(Method(
    MethodInfo("lora", Technique.FINETUNING, tuple(Granularity), "4.4.1",
               "OPPU (Tan et al. 2024), per-user LoRA"),
    personal=personal, defaults={"rank": 8, "alpha": 16.0, "targets": "q,v"}))
