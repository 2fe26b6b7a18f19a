"""Personal parameters out of perjax and back in: peft LoRA folders, merged Hugging Face model
folders, and perjax's own group folders (`perjax.checkpoint.export_group`)."""
