"""Sentence encoder: tiny random BERTs for the mechanics, the real MiniLM for parity."""
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from perjax.errors import PerjaxError
from perjax.models import zoo
from perjax.models.bert import bert_to_tensors
from perjax.models.encoder import Pooling, load_encoder, tiny_bert_encoder
from perjax.models.safetensors_io import read_safetensors

REFERENCE = Path(__file__).parent / "reference" / "minilm_embeddings.npz"
WORDS = ["the", "user", "likes", "hiking", "in", "alps", "weekend", "trip", "ideas", "##s"]


def _tiny_tokenizer():
  """A 15-piece WordPiece tokenizer built in memory (no fetch): [CLS] ... [SEP] like BERT."""
  from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
  from transformers import PreTrainedTokenizerFast
  specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  vocab = {tok: i for i, tok in enumerate(specials + WORDS)}
  tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
  tok.normalizer = normalizers.BertNormalizer(lowercase=True)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.post_processor = processors.TemplateProcessing(
      single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
  return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                 cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _random_ids(rng, n, low=5, high=101, min_len=3, max_len=40):
  return [[2] + list(rng.integers(low, high, rng.integers(min_len, max_len))) + [3]
          for _ in range(n)]


def test_shape_and_unit_norm():
  enc = tiny_bert_encoder(seed=1)
  out = enc.encode_ids(_random_ids(np.random.default_rng(0), 5))
  assert out.shape == (5, 24) and out.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
  assert enc.encode_ids([]).shape == (0, 24)


def test_padding_invariance():
  enc = tiny_bert_encoder(seed=2)
  ids = [2, 17, 44, 9, 83, 3]
  outs = []
  for length in (6, 13, 32, 61):  # odd lengths, bucket-sized and the maximum
    padded = np.zeros((1, length), np.int32)
    mask = np.zeros((1, length), np.int32)
    padded[0, :6], mask[0, :6] = ids, 1
    outs.append(enc.embed_ids(padded, mask)[0])
  for out in outs[1:]:
    np.testing.assert_allclose(out, outs[0], atol=2e-6)
  # The same text alone and in a batch with much longer neighbours (more padding).
  rng = np.random.default_rng(3)
  alone = enc.encode_ids([ids])[0]
  mixed = enc.encode_ids(_random_ids(rng, 6, min_len=30, max_len=55) + [ids], batch_size=4)[-1]
  np.testing.assert_allclose(mixed, alone, atol=2e-6)


def test_order_is_kept_and_batching_does_not_matter():
  enc = tiny_bert_encoder(seed=3)
  ids = _random_ids(np.random.default_rng(4), 11)
  full = enc.encode_ids(ids, batch_size=64)
  small = enc.encode_ids(ids, batch_size=3)
  np.testing.assert_allclose(small, full, atol=2e-6)
  one_by_one = np.stack([enc.encode_ids([x])[0] for x in ids])
  np.testing.assert_allclose(one_by_one, full, atol=2e-6)


def test_buckets_avoid_recompiles():
  enc = tiny_bert_encoder(seed=4)
  rng = np.random.default_rng(5)
  for n in (3, 4):  # both round up to a batch of 4
    for length in (5, 11, 29):  # all pad to 32
      enc.encode_ids([[2] + list(rng.integers(5, 101, length)) + [3] for _ in range(n)])
  assert enc._forward._cache_size() == 1


def test_cls_pooling_without_normalize():
  enc = tiny_bert_encoder(seed=5, pooling=Pooling(mode="cls", normalize=False))
  out = enc.encode_ids(_random_ids(np.random.default_rng(6), 3))
  assert not np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_encode_texts_truncates_and_handles_empty():
  enc = tiny_bert_encoder(seed=6, tokenizer=_tiny_tokenizer(), max_seq_length=61)
  assert enc.encode([]).shape == (0, 24)
  out = enc.encode(["The user likes hiking", "weekend trip ideas " * 50, ""])
  assert out.shape == (3, 24) and np.isfinite(out).all()
  # Past max_seq_length the text is cut, so longer repeats give the same vector.
  np.testing.assert_allclose(enc.encode(["weekend trip ideas " * 80])[0], out[1], atol=2e-6)
  with pytest.raises(TypeError):
    enc.encode("a single string")


def _write_folder(folder: Path, enc, *, sharded: bool) -> None:
  """A sentence-transformers style folder holding `enc`'s weights and the tiny tokenizer."""
  cfg = enc.model.config
  folder.mkdir()
  tensors = bert_to_tensors(enc.model)
  if sharded:  # two shards + index, the layout big checkpoints use
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2],
              "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
      save_file({k: tensors[k] for k in keys}, folder / file)
    weight_map = {k: file for file, keys in shards.items() for k in keys}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
  else:
    save_file({f"bert.{k}": v for k, v in tensors.items()}, folder / "model.safetensors")
  (folder / "config.json").write_text(json.dumps({
      "model_type": "bert", "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
      "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
      "intermediate_size": cfg.intermediate_size,
      "max_position_embeddings": cfg.max_position_embeddings, "hidden_act": "gelu"}))
  (folder / "modules.json").write_text(json.dumps([
      {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
      {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
      {"idx": 2, "name": "2", "path": "2_Normalize",
       "type": "sentence_transformers.models.Normalize"}]))
  (folder / "1_Pooling").mkdir()
  (folder / "1_Pooling" / "config.json").write_text(json.dumps(
      {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}))
  (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 40}))
  _tiny_tokenizer().save_pretrained(folder)


@pytest.mark.parametrize("sharded", [False, True])
def test_load_encoder_from_folder_roundtrip(tmp_path, sharded):
  enc = tiny_bert_encoder(seed=7)
  folder = tmp_path / "tiny"
  _write_folder(folder, enc, sharded=sharded)
  assert len(read_safetensors(folder)) == len(bert_to_tensors(enc.model))
  loaded = load_encoder(folder)
  assert loaded.max_seq_length == 40 and loaded.pooling == Pooling("mean", True)
  ids = _random_ids(np.random.default_rng(8), 4, high=15, max_len=30)
  np.testing.assert_allclose(loaded.encode_ids(ids), enc.encode_ids(ids), atol=1e-6)
  texts = ["the user likes hiking", "alps trip"]
  assert loaded.encode(texts).shape == (2, 24)
  if not sharded:  # one dtype check is enough; each compile costs seconds
    bf16 = load_encoder(folder, dtype="bfloat16").encode(texts)
    np.testing.assert_allclose(bf16, loaded.encode(texts), atol=3e-2)


def test_load_encoder_unknown_name_is_one_line():
  with pytest.raises(PerjaxError) as e:
    load_encoder("all-minilm-l6")
  msg = str(e.value)
  assert "\n" not in msg and "all-minilm-l6-v2" in msg and "perjax models list" in msg


@pytest.mark.real_model
def test_minilm_matches_sentence_transformers():
  try:
    zoo.fetch("all-minilm-l6-v2", progress=False)
  except PerjaxError as e:
    pytest.skip(f"all-minilm-l6-v2 could not be fetched (offline?): {e}")
  ref = np.load(REFERENCE)
  texts = [str(t) for t in ref["texts"]]
  out = load_encoder("all-minilm-l6-v2").encode(texts, batch_size=3)
  assert out.shape == ref["embeddings"].shape
  cos = (out * ref["embeddings"]).sum(1) / (
      np.linalg.norm(out, axis=1) * np.linalg.norm(ref["embeddings"], axis=1))
  assert cos.min() >= 0.9999, cos
