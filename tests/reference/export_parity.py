"""Checks `perjax export` against transformers + peft: the peft adapter on transformers' model
(read from the same GGUF file, or the same Hugging Face folder with --base) reproduces a run's
greedy answers for one user, and the merged folder's logits match perjax's personalized logits.

Two steps, one per environment:
  # 1. perjax's environment: the user's chat-formatted prompts and perjax's logits for them
  .venv/bin/python tests/reference/export_parity.py perjax --run W --user U --out L.npz
  # 2. the reference venv (torch, transformers, gguf, peft), never perjax's own
  /tmp/ref/bin/python tests/reference/export_parity.py reference --run W --user U \
      --logits L.npz --peft E --merged M (--gguf FILE.gguf | --base FOLDER)
Step 2 prints one JSON line: identical greedy answers (of the user's rows) and the largest
relative logit difference, merged folder and peft adapter against perjax.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _records(run: Path, user: str) -> list[dict]:
  rows = [json.loads(l) for l in (run / "predictions.jsonl").read_text().splitlines() if l]
  mine = [r for r in rows if r["user_id"] == user]
  if not mine:
    sys.exit(f"user {user!r} has no rows in {run / 'predictions.jsonl'}")
  return mine


def perjax_step(args) -> None:
  from perjax.export.finished_run import open_run, personalized_model
  run = open_run(args.run)
  model, tokenizer = personalized_model(run)
  group = run.group_of_user(args.user)
  out = {}
  for i, r in enumerate(_records(Path(args.run), args.user)[:args.logit_rows]):
    messages = ([{"role": "system", "content": r["system"]}] if r.get("system") else []) + \
        [{"role": "user", "content": r["prompt"]}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                        return_dict=False)
    out[f"ids_{i}"] = np.asarray(ids, np.int64)
    out[f"logits_{i}"] = np.asarray(model(np.asarray([ids]), group_ids=np.asarray([group]))[0],
                                    np.float32)
  np.savez(args.out, **out)
  print(f"{args.out}: perjax logits of {len(out) // 2} prompts of user {args.user} (group {group})")


def _rel(a, b) -> float:
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def reference_step(args) -> None:
  import torch
  from peft import PeftModel
  from transformers import AutoModelForCausalLM, AutoTokenizer
  torch.manual_seed(0)
  if args.gguf:
    gguf = Path(args.gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    base = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                dtype=torch.float32).eval()
  else:  # eager attention: the one that applies Gemma 2's soft-capping
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32,
                                                attn_implementation="eager").eval()
  peft_model = PeftModel.from_pretrained(base, args.peft).eval()
  config = json.loads((Path(args.run) / "config.json").read_text())
  records = _records(Path(args.run), args.user)
  same, answers = 0, []
  for r in records:
    messages = ([{"role": "system", "content": r["system"]}] if r.get("system") else []) + \
        [{"role": "user", "content": r["prompt"]}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                        return_dict=False)
    with torch.no_grad():
      out = peft_model.generate(torch.tensor([ids]), max_new_tokens=config["eval"]["max_new_tokens"],
                                do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=tokenizer.eos_token_id)
    text = tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
    same += text.strip() == r["output"].strip()
    answers.append({"perjax": r["output"], "peft": text})
  logits = np.load(args.logits)
  merged = AutoModelForCausalLM.from_pretrained(args.merged, dtype=torch.float32,
                                                attn_implementation="eager").eval()
  merged_rel, peft_rel = [], []
  for i in range(len(logits.files) // 2):
    ids = torch.tensor(logits[f"ids_{i}"][None])
    want = logits[f"logits_{i}"]
    with torch.no_grad():
      merged_rel.append(_rel(merged(ids).logits[0].numpy(), want))
      peft_rel.append(_rel(peft_model(ids).logits[0].numpy(), want))
  print(json.dumps({"user": args.user, "rows": len(records), "identical_greedy": same,
                    "merged_max_rel_logit_diff": max(merged_rel),
                    "peft_max_rel_logit_diff": max(peft_rel), "answers": answers}))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest="step", required=True)
  a = sub.add_parser("perjax")
  a.add_argument("--run", required=True)
  a.add_argument("--user", required=True)
  a.add_argument("--out", required=True)
  a.add_argument("--logit-rows", type=int, default=2)
  b = sub.add_parser("reference")
  for flag in ("--run", "--user", "--logits", "--peft", "--merged"):
    b.add_argument(flag, required=True)
  source = b.add_mutually_exclusive_group(required=True)
  source.add_argument("--gguf")
  source.add_argument("--base")
  args = p.parse_args()
  (perjax_step if args.step == "perjax" else reference_step)(args)


if __name__ == "__main__":
  main()
