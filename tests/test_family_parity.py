"""Every decoder family against transformers on the same weights: a tiny random checkpoint
written by transformers (tests/reference/tiny_families.py) loads with `perjax.models.load`, gives
its logits within 1e-4 relative error and its greedy tokens, and brings its tokenizer and chat
template; its GGUF, written as llama.cpp writes one (tests/reference/tiny_gguf.py), gives the
same logits. Needs the reference Python (tests/reference_env.py)."""
import json

import numpy as np
import pytest

import perjax.models
from perjax.generation import Generator, SamplingConfig
from perjax.models.families import SUPPORTED
from reference_env import reference_python, run_reference

GGUF_FAMILIES = ("llama", "qwen2", "mistral", "qwen3", "gemma2", "gemma3_text", "phi3")


def _rel(a, b):
  return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("family", SUPPORTED)
def test_logits_and_greedy_tokens_match_transformers(tiny_checkpoint, family):
  folder = tiny_checkpoint(family)
  ref = np.load(folder / "reference.npz")
  model, tokenizer = perjax.models.load(str(folder), progress=False)
  assert model.config.family == family
  assert _rel(np.asarray(model(ref["input_ids"])), ref["logits"]) < 1e-4
  new = Generator(model, tokenizer, stop_at_eos=False).generate_ids(
      [ref["prompt"].tolist()], sampling=SamplingConfig(max_new_tokens=len(ref["greedy"])))
  assert new[0] == ref["greedy"].tolist()


@pytest.mark.parametrize("family", SUPPORTED)
def test_tokenizer_and_chat_template_come_with_the_folder(tiny_checkpoint, family):
  folder = tiny_checkpoint(family)
  want = json.loads((folder / "reference.json").read_text())
  _, tokenizer = perjax.models.load(str(folder), progress=False)
  assert len(want["text_ids"]) >= 4  # the reference tokenizer does tokenize the text
  assert tokenizer(want["text"]).input_ids == want["text_ids"]
  chat = tokenizer.apply_chat_template([{"role": "user", "content": want["text"]}],
                                       tokenize=False, add_generation_prompt=True)
  assert chat == want["chat"]


def test_a_sharded_checkpoint_loads_through_its_index(tiny_checkpoint):
  folder = tiny_checkpoint("qwen3")  # written in shards
  assert (folder / "model.safetensors.index.json").exists()
  assert len(list(folder.glob("model-*.safetensors"))) > 1


@pytest.mark.parametrize("family", GGUF_FAMILIES)
def test_gguf_as_llama_cpp_writes_it_gives_the_same_logits(tiny_checkpoint, tmp_path, family):
  folder = tiny_checkpoint(family, gguf=True)
  gguf = tmp_path / "model.gguf"
  run_reference(reference_python(), "tiny_gguf.py", folder, gguf)
  ref = np.load(folder / "reference.npz")
  model, _ = perjax.models.load(str(gguf), progress=False)
  assert _rel(np.asarray(model(ref["input_ids"])), ref["logits"]) < 1e-4
