"""Per-group LoRA adapters on the chosen projections; at user granularity this is OPPU's
personal PEFT (combine with `rag` for the full OPPU recipe, `rag+lora`; `lora@global+lora` adds a
shared task adapter under each user's own).

The module is the library's LoRA (`perjax.modules.lora`): `y + x A_g B_g * alpha / r` at the
"proj.<target>" hook points for the example's group g; an untrained row is exactly the base
model.
"""
from perjax.method import Method, register
from perjax.modules.lora import LORA_DEFAULTS, lora_factory
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique

LORA = register(Method(
    MethodInfo("lora", Technique.FINETUNING, tuple(Granularity), "4.4.1",
               "OPPU (Tan et al. 2024), per-user LoRA"),
    personal=lora_factory("lora"), defaults=LORA_DEFAULTS))
