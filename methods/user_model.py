"""P-RLHF's user model (Li et al. 2024, "Personalized Language Modeling from Personalized Human
Feedback"): a user embedding of `length` vectors prepended to the input embeddings.

  kind=individual  e_g = e_0 + o_g: a generic embedding e_0 shared by every group plus a learned
                   offset o_g per group (zero at the start, so an unseen user, whose fallback row
                   is never trained, gets the generic embedding)
  kind=cluster     e_g = sum_k softmax(w_g)_k c_k: a mixture of K cluster embeddings shared by
                   every group, with learned mixing logits w_g per group (uniform at the start)

At user granularity a group is a user (P-RLHF's individual user model); at persona granularity a
persona, whose mixture over the clusters (`kind=cluster`) is P-RLHF's cluster-based model. The
shared tables train on every group's examples; `learn_shared=false` keeps them at their random
start, so each group's row trains independently of the others. Trained with the LM loss, or with
a preference objective (`user_model+dpo`, or `pdpo`: DPO with the base model as reference).
"""
from perjax.method import Method, register
from perjax.modules.user_embedding import USER_MODEL_DEFAULTS, user_model_factory
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique

USER_MODEL = register(Method(
    MethodInfo("user_model", Technique.EMBEDDING, (Granularity.USER, Granularity.PERSONA), "4.3",
               "P-RLHF user model: generic embedding + per-user offset, or a mixture of "
               "cluster embeddings (Li et al. 2024)"),
    personal=user_model_factory("user_model"), defaults=USER_MODEL_DEFAULTS))
