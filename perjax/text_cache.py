"""Generated texts cached on disk, one small JSON file per key, so a rerun (another workdir,
another sweep) generates nothing it generated before.

A key is the sha256 of its parts (model, prompt template, the input the text was generated
from, generation settings): any change to one of them is a new entry. Files are written to a
temporary name and renamed, so a killed run never leaves a half-written entry.
"""
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence


def default_dir() -> Path:
  from perjax.models.zoo import cache_dir
  return cache_dir() / "generated"


def key_of(*parts: object) -> str:
  return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).hexdigest()


class TextCache:
  def __init__(self, directory: str | os.PathLike | None = None):
    self.dir = Path(directory).expanduser() if directory else default_dir()

  def _path(self, key: str) -> Path:
    return self.dir / key[:2] / f"{key}.json"

  def get(self, key: str) -> str | None:
    try:
      return json.loads(self._path(key).read_text())["text"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
      return None

  def put(self, key: str, text: str) -> None:
    path = self._path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"text": text}))
    tmp.replace(path)

  def generate(self, keys: Sequence[str], prompts: Sequence[str],
               generate: Callable[[list[str]], list[str]]) -> tuple[list[str], int]:
    """(texts, how many were generated): the cached text of each key, the rest generated from
    their prompts in one call (a prompt shared by several keys is generated once)."""
    texts = [self.get(k) for k in keys]
    todo = {}
    for i, (k, t) in enumerate(zip(keys, texts)):
      if t is None:
        todo.setdefault(k, []).append(i)
    if todo:
      fresh = generate([prompts[idx[0]] for idx in todo.values()])
      for (k, idx), text in zip(todo.items(), fresh):
        self.put(k, text)
        for i in idx:
          texts[i] = text
    return texts, len(todo)
