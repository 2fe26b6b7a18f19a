"""The train step as one SPMD program over a device mesh: the devices of this process
(`config.mesh`) or of every `jax.distributed` process.

Without a mesh spec, data parallel: every device of every process (or the devices given) on
`data` (`sharding.make_mesh(groups=1)`), so the state (personal tables, optimizer state, base
weights) is replicated. With one (`"data=2,fsdp=4"`), the base and its optimizer state are
sharded by `sharding.state_shardings`. Either way each batch's rows are split over the
processes in order: process i supplies the i-th contiguous block of rows
(`distributed.from_process_slices`, that is `jax.make_array_from_process_local_data`). Every process computes the same batch indices, so
no data is exchanged; XLA sums the gradients over the devices inside the step.
"""
import jax

from perjax import distributed, sharding


class AcrossProcesses:
  """Shardings of one training loop's step, and the placing of its state, batches and keys."""

  def __init__(self, state, example_batch: dict, mesh_spec: str = "", devices=None):
    """`devices`: those of the data-parallel mesh without a spec (default: every device)."""
    mesh = (sharding.make_mesh(mesh_spec, jax.devices()) if mesh_spec
            else sharding.make_mesh(groups=1, devices=devices))
    self.mesh = mesh
    self.in_shardings, self.out_shardings = sharding.step_shardings(state, example_batch, mesh)

  def step_kwargs(self) -> dict:
    """What `make_train_step` takes to compile the step for this layout."""
    return dict(in_shardings=self.in_shardings, out_shardings=self.out_shardings)

  def state(self, state):
    return distributed.replicate(state, self.in_shardings[0])

  def batch(self, batch: dict) -> dict:
    """The global batch, of which this process supplies only its own rows."""
    return distributed.from_process_slices(batch, self.in_shardings[1])

  def key(self, key):
    return distributed.replicate(key, self.in_shardings[2])

  @staticmethod
  def local(state):
    """The trained state as this process's own arrays (what a one-process run would hold; in
    one process, the arrays as they are, sharded over its devices)."""
    return distributed.local_copy(state)
