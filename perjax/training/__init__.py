"""Training: per-group optimizers, objectives, batching, the jitted train step and the loop
that runs it (loop.py), on the devices placement.py picks."""
