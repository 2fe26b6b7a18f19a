"""Tiny random transformers checkpoints of every decoder family perjax supports, with the
reference outputs to check perjax against. Run with the reference Python only.

  tiny_families.py make FAMILY OUT_DIR [--gguf]

writes OUT_DIR/ with `save_pretrained`'s config.json and safetensors (the qwen3 checkpoint in
shards, with its index), a small byte-level BPE tokenizer with a chat template, and reference.npz:
`input_ids` [3, 19], transformers' float32 `logits` [3, 19, V], `prompt` [9] and `greedy`, its
8 greedy new tokens; reference.json holds a text, its token ids and its chat-template rendering.
`--gguf`: a variant whose settings a GGUF file can hold (see docs/models.md): Gemma's query
scale from head_dim, Gemma 3's one-in-six global layers, no Llama 3 rope scaling, Mistral
without a window.

Sizes are small and odd; norms are perturbed so that a (1 + w) against w mix-up shows, and
windows are shorter than the inputs so that sliding layers matter.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB, LAYERS, T = 211, 3, 19
COMMON = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=50, num_hidden_layers=LAYERS,
              num_attention_heads=6, num_key_value_heads=2, head_dim=16,
              max_position_embeddings=128, initializer_range=0.1, bos_token_id=1,
              eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} </s> {% endfor %}"
                 "{% if add_generation_prompt %}<assistant> {% endif %}")


def family_config(family: str, gguf: bool):
  window = dict(sliding_window=7)
  gemma = dict(query_pre_attn_scalar=16 if gguf else 24, hidden_activation="gelu_pytorch_tanh",
               tie_word_embeddings=True, **window)
  if family == "llama":
    rope = {} if gguf else dict(rope_parameters={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16, "rope_theta": 500000.0})
    return transformers.LlamaConfig(**COMMON, **rope)
  if family == "qwen2":
    return transformers.Qwen2Config(**COMMON)
  if family == "mistral":
    return transformers.MistralConfig(**COMMON, **({} if gguf else window))
  if family == "qwen3":
    return transformers.Qwen3Config(**COMMON)
  if family == "gemma2":
    return transformers.Gemma2Config(**{**COMMON, **gemma}, attn_logit_softcapping=5.0,
                                     final_logit_softcapping=10.0)
  if family == "gemma3_text":
    layout = dict(num_hidden_layers=7) if gguf else dict(
        num_hidden_layers=4, layer_types=["sliding_attention", "full_attention"] * 2)
    return transformers.Gemma3TextConfig(**{**COMMON, **gemma, **layout}, rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 100000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
  if family == "phi3":
    return transformers.Phi3Config(**COMMON, **window)
  raise SystemExit(f"unknown family {family!r}")


def tokenizer():
  """A byte-level BPE of at most VOCAB tokens, as real checkpoints of these families have."""
  specials = ["<pad>", "<s>", "</s>", "<system>", "<user>", "<assistant>"]
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  corpus = [" ".join(f"w{i}" for i in range(j, j + 20)) for j in range(0, 200, 5)]
  letters = sorted({c for line in corpus for c in line.replace(" ", "\u0120")})
  trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials,
                                initial_alphabet=letters)
  tok.train_from_iterator(corpus, trainer)
  return transformers.PreTrainedTokenizerFast(
      tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
      chat_template=CHAT_TEMPLATE)


def make(family: str, out: Path, gguf: bool):
  torch.manual_seed(0)
  config = family_config(family, gguf)
  config._attn_implementation = "eager"  # soft-capping applies in eager attention
  model = transformers.AutoModelForCausalLM.from_config(config).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name:
        p.add_(torch.randn_like(p) * 0.3)
  shards = dict(max_shard_size="100KB") if family == "qwen3" else {}
  model.save_pretrained(out, **shards)
  tok = tokenizer()
  tok.save_pretrained(out)
  ids = torch.tensor(np.random.default_rng(0).integers(6, VOCAB, (3, T)))
  prompt = ids[:1, :9]
  with torch.no_grad():
    logits = model(ids).logits.float().numpy()
    greedy = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8,
                            do_sample=False, min_new_tokens=8).numpy()[0, 9:]
  np.savez(out / "reference.npz", input_ids=ids.numpy(), logits=logits,
           prompt=prompt.numpy()[0], greedy=greedy)
  # what a transformers user gets from the folder
  tok = transformers.AutoTokenizer.from_pretrained(out)
  text = "w3 w17 w42 w5"
  messages = [{"role": "user", "content": text}]
  (out / "reference.json").write_text(json.dumps({
      "text": text, "text_ids": tok(text).input_ids,
      "chat": tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)}))


def main():
  p = argparse.ArgumentParser()
  sub = p.add_subparsers(dest="command", required=True)
  m = sub.add_parser("make")
  m.add_argument("family")
  m.add_argument("out", type=Path)
  m.add_argument("--gguf", action="store_true")
  args = p.parse_args()
  make(args.family, args.out, args.gguf)


if __name__ == "__main__":
  main()
