"""Runs ../shared/bench/hf_peft_baseline.py with the model cast to bfloat16 (it loads float32).

Context only: it shows what the PyTorch stack gains from bfloat16 on the same CPU, so perjax's
bfloat16 figures can be compared at equal precision too. Same arguments as the reference;
$BASELINE names the reference script where it is not ../shared/bench/hf_peft_baseline.py.
"""
import os
import sys

import torch

BASELINE = os.environ.get("BASELINE") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "bench",
    "hf_peft_baseline.py")
sys.path.insert(0, os.path.dirname(BASELINE))
import hf_peft_baseline as reference  # noqa: E402

_load_float32 = reference.load


def load_bfloat16(gguf):
  tokenizer, model = _load_float32(gguf)
  return tokenizer, model.to(torch.bfloat16)


reference.load = load_bfloat16
if __name__ == "__main__":
  sys.argv[0] = "hf_peft_baseline.py"
  reference.main()
