"""Personal modules that more than one method builds on (LoRA, P-RLHF's user embedding): library
pieces, so that no file in methods/ imports another."""
