"""Hand-written kernels, used only where they beat XLA's own code and give the same numbers."""
