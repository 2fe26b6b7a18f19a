"""Global granularity: everybody shares one group (G = 1) and prompting pools all users."""
from perjax.grouping import Grouping, Groups, fallback_to, register
from perjax.taxonomy import Granularity


def fit(train, ctx) -> Groups:
  return Groups(num_groups=1, pool_by=Granularity.GLOBAL,
                known={e.user_id: 0 for e in train}, assign_unseen=fallback_to(0),
                names=("everyone",))


GLOBAL = register(Grouping("global", Granularity.GLOBAL, fit, description="one shared group"))
