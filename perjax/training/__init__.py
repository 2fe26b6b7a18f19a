"""Training: per-group optimizers, objectives, batching and the jitted train step."""
