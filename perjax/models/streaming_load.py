"""A Hugging Face folder's weights loaded straight into (sharded) device arrays, one tensor at a
time: no float32 copy of the model and no second whole copy in host memory.

A sharded base leaf is made by `jax.make_array_from_callback`. The callback reads only the
block of the checkpoint that the requested shard needs (per layer, for the stacked layer
leaves), casts it to the leaf's dtype and returns it. Under `jax.distributed`, each process is
asked only for its own shards, so it reads only those. On one device the host briefly holds a
leaf twice (its block and the device copy). Leaves load largest first, so that moment comes
when little else is resident. XLA's CPU backend widens bfloat16 to float32 to update an array
in place, so filling a leaf block by block would copy it whole at every block.

The safetensors files are read with plain positioned reads, not memory-mapped. Pages of a mapped
file count towards the process's resident memory until the kernel drops them. A whole model's
mapped pages would double the measured peak, and a read of the needed bytes does not.
"""
import functools
import json
import struct
from pathlib import Path

import jax
import numpy as np
from ml_dtypes import bfloat16

from perjax.errors import PerjaxError
from perjax.models import hf_layout
from perjax.models.safetensors_io import safetensors_files

_DTYPES = {"BF16": np.dtype(bfloat16), "F16": np.dtype(np.float16),
           "F32": np.dtype(np.float32), "F64": np.dtype(np.float64)}


class SafetensorsTensors:
  """The tensors of a folder's safetensors files, by name, read on demand."""

  def __init__(self, folder):
    self.entries = {}  # name -> (file, absolute byte offset, dtype, shape)
    for path in safetensors_files(folder):
      with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
      for name, info in header.items():
        if name == "__metadata__":
          continue
        if info["dtype"] not in _DTYPES:
          raise PerjaxError(f"{path}: tensor {name} has dtype {info['dtype']}, not a float type")
        start = 8 + size + info["data_offsets"][0]
        self.entries[name] = (path, start, _DTYPES[info["dtype"]], tuple(info["shape"]))

  def __contains__(self, name: str) -> bool:
    return name in self.entries

  def shape(self, name: str) -> tuple:
    return self.entries[name][3]

  def rows(self, name: str, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of the tensor's first axis (all of a 1-D tensor's elements)."""
    path, offset, dtype, shape = self.entries[name]
    row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    out = np.empty((stop - start,) + shape[1:], dtype)
    with open(path, "rb") as f:
      f.seek(offset + start * row)
      if f.readinto(memoryview(out.reshape(-1).view(np.uint8))) != out.nbytes:
        raise PerjaxError(f"{path}: tensor {name} is truncated")
    return out


def _block(tensors: SafetensorsTensors, part: hf_layout.Part, layer, index, dtype) -> np.ndarray:
  """The perjax-layout block `index` (slices of one layer's leaf) of `part`, in `dtype`."""
  name = part.tensor_name(layer)
  if name not in tensors:
    raise PerjaxError(f"the checkpoint has no tensor {name}")
  offset = part.rows[0] if part.rows else 0
  if part.transpose:  # perjax [in, out] is the checkpoint's [out, in]: read the out rows
    rows, cols = index[1], index[0]
  else:
    rows, cols = index[0], index[1:]
  w = tensors.rows(name, offset + rows.start, offset + rows.stop)
  w = w[(slice(None),) + (cols if isinstance(cols, tuple) else (cols,))]
  return np.asarray(w.T if part.transpose else w).astype(dtype, copy=False)


def _concrete(index, shape) -> tuple:
  return tuple(slice(*s.indices(n)) for s, n in zip(index, shape))


def _leaf_reader(block, stacked: bool, shape, dtype):
  """`callback(index) -> np.ndarray` for `jax.make_array_from_callback`, from `block(layer,
  index, dtype)`: one layer's block (layer None for a leaf without a layer axis)."""
  def read(index):
    index = _concrete(index, shape)
    if not stacked:
      return block(None, index, dtype)
    layers = range(*index[0].indices(shape[0]))
    out = np.empty((len(layers),) + tuple(s.stop - s.start for s in index[1:]), dtype)
    for j, i in enumerate(layers):  # filled in place: no list of blocks beside the stack
      out[j] = block(i, index[1:], dtype)
    return out
  return read


def place_leaves(abstract_leaves: dict, blocks: dict, leaf_sharding=None,
                 progress: bool = False) -> dict:
  """{path: jax.Array} for `abstract_leaves` ({"embed": ShapeDtypeStruct, "layers/q": ...}),
  each read by `blocks[path] = (block(layer, index, dtype), stacked)` (see `_leaf_reader`) and
  placed by `leaf_sharding(path, shape)` (default: the first device); a progress bar over
  the leaves with `progress`."""
  from tqdm.auto import tqdm
  default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  out = {}
  # largest first: a leaf's transient host copy then overlaps only the leaves placed before it,
  # so the peak is about the weights plus the smallest leaves, not plus the largest
  size = lambda item: int(np.prod(item[1].shape)) * np.dtype(item[1].dtype).itemsize
  for path, leaf in tqdm(sorted(abstract_leaves.items(), key=size, reverse=True),
                         desc="loading", unit="leaf", disable=not progress):
    if path not in blocks:
      raise PerjaxError(f"no checkpoint tensor is known for the model's {path}")
    block, stacked = blocks[path]
    sharding = leaf_sharding(path, leaf.shape) if leaf_sharding else default
    # the host holds one shard's block at a time, beside the arrays already placed
    out[path] = jax.make_array_from_callback(
        leaf.shape, sharding, _leaf_reader(block, stacked, leaf.shape, leaf.dtype))
    out[path].block_until_ready()  # the copy is asynchronous: its host block lives until done
  return out


def load_base(config, folder, abstract_leaves: dict, leaf_sharding=None,
              progress: bool = False) -> dict:
  """`place_leaves` for a Hugging Face folder's safetensors, named by `hf_layout`."""
  tensors = SafetensorsTensors(folder)
  parts = {p.field: (p, False) for p in hf_layout.top_parts(config)}
  parts.update({f"layers/{p.field}": (p, True) for p in hf_layout.layer_parts(config)})
  blocks = {path: (functools.partial(_block, tensors, part), stacked)
            for path, (part, stacked) in parts.items()}
  return place_leaves(abstract_leaves, blocks, leaf_sharding, progress)
