"""Reference logits from transformers (and peft): run with the reference Python only.

  hf_logits.py --model DIR [--peft DIR] --ids IN.npz --out OUT.npz

Reads `input_ids` [B, T] from IN.npz and writes transformers' float32 `logits` [B, T, V] of the
model folder, with the peft adapter applied when given.
"""
import argparse

import numpy as np
import torch
import transformers


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--model", required=True)
  p.add_argument("--peft")
  p.add_argument("--ids", required=True)
  p.add_argument("--out", required=True)
  args = p.parse_args()
  model = transformers.AutoModelForCausalLM.from_pretrained(
      args.model, attn_implementation="eager", dtype=torch.float32)
  if args.peft:
    from peft import PeftModel
    model = PeftModel.from_pretrained(model, args.peft)
  model.eval()
  ids = torch.tensor(np.load(args.ids)["input_ids"])
  with torch.no_grad():
    logits = model(ids).logits.float().numpy()
  np.savez(args.out, logits=logits)


if __name__ == "__main__":
  main()
