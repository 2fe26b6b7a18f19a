"""A run folder's name as one parsed object: its cell (a sweep run's overrides,
`method=rag,granularity=user`) and, where the sweep ran several seeds, the seed: the folder
`method=rag,granularity=user,seed=2`."""
import dataclasses

SEED_SUFFIX = ",seed="


@dataclasses.dataclass(frozen=True)
class RunName:
  cell: str
  seed: int | None = None  # None: a run of its own, not one of a cell's seeds

  @classmethod
  def parse(cls, name: str) -> "RunName":
    """`CELL,seed=S` (S digits) is a seed's run of CELL; any other name is a cell alone."""
    cell, sep, seed = name.rpartition(SEED_SUFFIX)
    return cls(cell, int(seed)) if sep and seed.isdigit() else cls(name)

  def format(self) -> str:
    return self.cell if self.seed is None else f"{self.cell}{SEED_SUFFIX}{self.seed}"

  def __str__(self) -> str:
    return self.format()
