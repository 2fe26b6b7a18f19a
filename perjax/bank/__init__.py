"""An off-device adapter bank: every user's personal rows and optimizer state in a TensorStore
array, with a fixed table of slots on the device.

- `rows`: one user's row of the personal tables and their per-group optimizer state, packed into
  bytes, and the deterministic initial row of a user never written;
- `store`: the bank on disk (zarr3, one chunk per user, created sparse), asynchronous write-back
  and atomic checkpoints of the dirty rows;
- `cohort`: which users a step trains, and their batch's group ids remapped to slots;
- `train`: the unchanged jitted train step over the slots, rows moved in and out of the bank;
- `cache`: an LRU cache of slots in front of the bank for serving any of the users.
"""
