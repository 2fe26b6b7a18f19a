"""P-DPO (Li et al. 2024, P-RLHF): DPO whose policy is conditioned on the user through P-RLHF's
user model (`perjax.modules.user_embedding`, as `methods/user_model.py`: a user embedding prepended to the input), and whose
reference is the base model without any user embedding (`base_only`). Only the user model
trains; `user_model+dpo` also trains per-group LoRA adapters under the same objective.

At user granularity the embedding is the generic one plus the user's offset; at persona
granularity (`kind=cluster`) a persona's mixture of shared cluster embeddings.
"""
from perjax.method import Method, objective_named, register
from perjax.modules.user_embedding import USER_MODEL_DEFAULTS, user_model_factory
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique

PDPO = register(Method(
    MethodInfo("pdpo", Technique.FINETUNING, (Granularity.USER, Granularity.PERSONA), "4.4",
               "P-DPO with a P-RLHF user model, reference = the base model (Li et al. 2024)"),
    personal=user_model_factory("pdpo"), objective=objective_named("dpo_pair_loss"), pairwise=True,
    defaults={"beta": 0.1, **USER_MODEL_DEFAULTS}))
