"""Global granularity: everybody shares one group (G = 1); prompting pools every user's items
(the user's own included)."""
from perjax.grouping import Grouping, Groups, PoolPolicy, fallback_to, register
from perjax.taxonomy import Granularity

POOL = PoolPolicy(key=lambda example, group: "everyone",
                  header=lambda key: "Past items of all users")


def fit(train, ctx) -> Groups:
  return Groups(num_groups=1, pool=POOL,
                known={e.user_id: 0 for e in train}, assign_unseen=fallback_to(0),
                names=("everyone",))


GLOBAL = register(Grouping("global", Granularity.GLOBAL, fit, description="one shared group",
                           shared=True))
