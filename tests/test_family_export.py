"""Export per decoder family, against transformers and peft on the same weights: a merged
folder of a LoRA-personalized tiny checkpoint computes perjax's personalized logits in
transformers, and the LoRA as a peft adapter (fused into `qkv_proj`/`gate_up_proj` for Phi-3)
computes them through peft. The LoRA acts at every projection with random nonzero tables.

Tiny checkpoints come from tests/reference/tiny_families.py (the `tiny_checkpoint` fixture) and
the reference logits from tests/reference/hf_logits.py, both run by the reference Python
(tests/reference_env.py)."""
import functools
import subprocess
from pathlib import Path

import numpy as np
import pytest

from perjax.modules.lora import LoRA
from perjax.export import merged, peft_format
from perjax.export.finished_run import row_tables
from perjax.models import decoder_loading
from perjax.models.personal import PROJECTIONS, single
from perjax.models.families import SUPPORTED
from reference_env import REFERENCE_DIR, reference_python, run_reference

USER = 1  # the row exported, of two


def _reference_logits(tmp_path, model_dir, ids, peft_dir=None):
  np.savez(tmp_path / "ids.npz", input_ids=ids)
  extra = ["--peft", peft_dir] if peft_dir else []
  run_reference(reference_python(), "hf_logits.py", "--model", model_dir,
                "--ids", tmp_path / "ids.npz", "--out", tmp_path / "out.npz", *extra)
  return np.load(tmp_path / "out.npz")["logits"]


def _rel(a, b):
  return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("family", SUPPORTED)
def test_merged_and_peft_exports_compute_the_personalized_model(tiny_checkpoint, tmp_path,
                                                                family):
  base = tiny_checkpoint(family)
  lora = functools.partial(LoRA, rank=3, targets=PROJECTIONS)
  model, _ = decoder_loading.load_decoder(str(base), personal=single(lora, 2, name="lora"),
                                          progress=False)
  (name, module), = model.personal.modules()
  rng = np.random.default_rng(0)
  for t in PROJECTIONS:  # B starts at zero: make every delta count
    b = getattr(module, f"{t}_b")
    b.value = rng.normal(0, 0.05, b.value.shape).astype(np.float32)
  ids = np.load(base / "reference.npz")["input_ids"]
  want = np.asarray(model(ids, group_ids=np.full(len(ids), USER)))
  assert _rel(want, np.asarray(model(ids, base_only=True))) > 1e-2  # the LoRA matters

  config, weights, tokenizer = decoder_loading.read_checkpoint(str(base), progress=False)
  merged.write_hf_folder(tmp_path / "merged", config, merged.merge(weights, [(name, module, USER)]),
                         tokenizer)
  assert _rel(_reference_logits(tmp_path, tmp_path / "merged", ids), want) < 1e-4

  rows = peft_format.LoraRows(rank=module.rank, alpha=module.alpha, targets=module.targets,
                              tables=row_tables(module, USER))
  peft_format.write_peft(tmp_path / "peft", rows, config=config)
  got = _reference_logits(tmp_path, base, ids, peft_dir=tmp_path / "peft")
  assert _rel(got, want) < 1e-4


@pytest.mark.parametrize("family", SUPPORTED)
def test_a_trained_runs_exports_reproduce_its_greedy_answers(tiny_checkpoint, tmp_path, family):
  """`perjax run` (the quickstart smoke, LoRA per user) on the family's tiny checkpoint, then
  `perjax export --format peft|merged`: peft on transformers gives the run's greedy answers and
  both give perjax's personalized logits (tests/reference/export_parity.py)."""
  import json
  import os
  import sys
  from perjax.cli import main
  base = tiny_checkpoint(family)
  run = tmp_path / "run"
  quickstart = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.py"
  assert main(["run", f"{quickstart}:smoke,model={base},method=lora,granularity=user",
               "--workdir", str(run)]) == 0
  user = json.loads((run / "predictions.jsonl").read_text().splitlines()[0])["user_id"]
  for fmt in ("peft", "merged"):
    assert main(["export", str(run), "--user", user, "--format", fmt,
                 "--out", str(tmp_path / fmt)]) == 0
  script = REFERENCE_DIR / "export_parity.py"
  subprocess.run([sys.executable, str(script), "perjax", "--run", str(run), "--user", user,
                  "--out", str(tmp_path / "logits.npz")], check=True, capture_output=True,
                 env={**os.environ, "JAX_PLATFORMS": "cpu"})
  out = run_reference(reference_python(), "export_parity.py", "reference", "--run", run,
                      "--user", user, "--logits", tmp_path / "logits.npz", "--peft",
                      tmp_path / "peft", "--merged", tmp_path / "merged", "--base", base)
  result = json.loads(out.strip().splitlines()[-1])
  assert result["rows"] >= 3
  assert result["identical_greedy"] >= result["rows"] - 1, result["answers"]
  assert result["merged_max_rel_logit_diff"] < 1e-4
  assert result["peft_max_rel_logit_diff"] < 1e-4
