"""User granularity: one group per user seen in training, plus a fallback group for new users.

The fallback row of personal parameters is never trained, so an unseen user gets the method's
untrained default (zero LoRA update; the initial soft prompt). Prompting pools the user's own
profile.
"""
from perjax.grouping import Grouping, Groups, PoolPolicy, fallback_to, register
from perjax.taxonomy import Granularity

# Keyed by user, not group: unseen users share the fallback group but not their items.
POOL = PoolPolicy(key=lambda example, group: example.user_id,
                  header=lambda key: "Past items of this user")


def fit(train, ctx) -> Groups:
  users = sorted({e.user_id for e in train})
  known = {u: g for g, u in enumerate(users)}
  return Groups(num_groups=len(users) + 1, pool=POOL, known=known,
                assign_unseen=fallback_to(len(users)), names=tuple(users) + ("<unseen>",))


USER = register(Grouping("user", Granularity.USER, fit,
                         description="one group per training user + a fallback group",
                         per_user=True))
