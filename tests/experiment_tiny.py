"""A tiny-llama version of the quickstart experiment: seconds per run on a CPU."""
from pathlib import Path

QUICKSTART = str(Path(__file__).resolve().parents[1] / "experiments" / "quickstart.py")
SPEC = QUICKSTART + ":smoke,model=tiny-llama"
TINY = {"data.params.examples_per_user": 6, "data.params.profile_size": 5,
        "data.params.n_personas": 2, "data.params.users_per_persona": 2, "data.max_test": 5,
        "train.steps": 3, "train.batch_size": 2, "train.seq_len": 48, "train.checkpoint_every": 2,
        "eval.max_new_tokens": 2, "methods.soft_prompt.length": 3, "methods.lora.rank": 3,
        "methods.rag.k": 2, "methods.rag.retriever": "bm25",
        # the tiny tokenizer spends about a token a character: room for a header and two items
        "methods.contextual.budget_tokens": 240}


def quickstart_sweep(*adds: str) -> str:
  """A sweep config file's text: the quickstart config, and `sweep(add)` making the `add(...)`
  calls given as source lines."""
  return (f"import importlib.util\n"
          f"spec = importlib.util.spec_from_file_location('qs', {QUICKSTART!r})\n"
          "qs = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(qs)\n\n"
          "def get_config(arg=None):\n  return qs.get_config(arg)\n\n"
          "def sweep(add):\n" + "".join(f"  {a}\n" for a in adds))


def same_run_outputs(a, b) -> None:
  """Two run folders hold the same predictions and metrics, the measured wall time aside
  (`cost.deterministic`: it is the one field two runs of a config never share). The gold
  likelihood is a float sum over the target's tokens: runs placed on other meshes agree on it
  to float32 rounding (1e-5 relative), not bit for bit; everything else is exact."""
  import json
  import pytest
  from perjax.experiment.cost import deterministic
  a, b = Path(a), Path(b)
  records = [[json.loads(l) for l in (d / "predictions.jsonl").open()] for d in (a, b)]
  assert len(records[0]) == len(records[1])
  for x, y in zip(*records):
    assert x.pop("gold_logprob", None) == pytest.approx(y.pop("gold_logprob", None), rel=1e-5)
    assert x == y
  metrics = [deterministic(json.loads((d / "metrics.json").read_text())) for d in (a, b)]
  for m in ("gold_nll", "gold_ppl"):
    assert metrics[0].pop(m, None) == pytest.approx(metrics[1].pop(m, None), rel=1e-5)
  assert metrics[0] == metrics[1], metrics


def dies_after(n_steps, real):
  """A make_train_step whose step function is interrupted after `n_steps` steps."""
  def make(*a, **k):
    step, calls = real(*a, **k), []

    def wrapped(*args):
      calls.append(1)
      if len(calls) > n_steps:
        raise KeyboardInterrupt
      return step(*args)
    return wrapped
  return make


def task_metrics(metrics: dict) -> set:
  """The metric names of a run less what it cost (`cost.COST_FIELDS`, e.g. train_steps)."""
  from perjax.experiment.cost import COST_FIELDS
  return {k for k in metrics if k not in COST_FIELDS}


def cli_overrides(extra=None) -> list[str]:
  return [f"--config.{k}={v}" for k, v in {**TINY, **(extra or {})}.items()]

# The DSP preference experiment on tiny-llama: 10 queries (8 train / 1 dev / 1 test), 6 test pairs.
PREF_SPEC = (str(Path(__file__).resolve().parents[1] / "experiments" / "dsp_preferences.py") +
             ":smoke,model=tiny-llama")
TINY_PREF = {"data.params.max_queries": 10, "data.max_test": 6, "train.steps": 3,
             "train.batch_size": 2, "train.seq_len": 48, "train.checkpoint_every": 2,
             "eval.batch_size": 4, "methods.dpo.rank": 3}


def require_dsp_data() -> None:
  """Skip (with the reason) where the real DSP file is absent, e.g. on a fresh machine."""
  import pytest
  from perjax.data.files import data_root
  path = data_root() / "dsp" / "domain_specific_preference.test.json"
  if not path.exists():
    pytest.skip(f"DSP preference data not found at {path} (set PERJAX_DATA)")
