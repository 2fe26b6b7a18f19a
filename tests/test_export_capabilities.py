"""`perjax export --format merged|peft` and `init.adapter` ask a personal module what it can do
(`merge_into`, `as_low_rank`, `low_rank_rows`), never its type: shown on tiny trained runs of
LoRA, (IA)^3 and a method defined outside the repository (a file named in config.plugins)."""
import json
import textwrap

import numpy as np
import pytest

from experiment_tiny import SPEC, cli_overrides
from perjax.cli import main
from perjax.export import peft_format
from perjax.export.adapters import init_from
from perjax.export.finished_run import open_run, personalized_model, row_tables
from perjax.models import hf_loader
from perjax.models.decoder_loading import build
from perjax.registry import METHODS, load_plugins

# A rank-r delta on the attention output, with its export capabilities: no perjax LoRA in it.
OUTSIDE = textwrap.dedent('''
    import functools
    import jax, jax.numpy as jnp, numpy as np
    from perjax.method import Method, register
    from perjax.models.personal import (LowRankDelta, OptionsMismatch, Personal,
                                        PersonalModule)
    from perjax.registry import MethodInfo
    from perjax.taxonomy import Granularity, Technique


    class OutputDelta(PersonalModule):
      def __init__(self, *, groups, dims, rngs, rank):
        self.rank, self.hooks, self.layered = rank, ("proj.o",), ("o_a", "o_b")
        din, dout = dims.projections["o"]
        self.o_a = Personal(jax.random.normal(rngs.params(), (groups, dims.num_layers, din, rank))
                            * 0.3)
        self.o_b = Personal(jnp.zeros((groups, dims.num_layers, rank, dout)))

      def project(self, name, y, x, rows):
        return y + jnp.einsum("btr,bro->bto", jnp.einsum("btd,bdr->btr", x, rows["o_a"]),
                              rows["o_b"])

      def describe(self):
        return {"rank": self.rank}

      def merge_into(self, layers, rows):
        delta = np.einsum("lir,lro->lio", rows["o_a"], rows["o_b"])
        return {**layers, "o": layers["o"] + delta.astype(layers["o"].dtype)}

      @classmethod
      def as_low_rank(cls, options, rows):
        r = int(options["rank"])
        return LowRankDelta(rank=r, alpha=float(r), targets=("o",),
                            tables={"o_a": rows["o_a"], "o_b": rows["o_b"]})

      def low_rank_rows(self, delta):
        if delta.rank != self.rank or tuple(delta.targets) != ("o",):
          raise OptionsMismatch(f"a rank-{delta.rank} delta on {delta.targets}",
                                {"rank": delta.rank})
        return {"o_a": delta.tables["o_a"], "o_b": delta.tables["o_b"] * delta.scale}


    register(Method(MethodInfo("output_delta", Technique.FINETUNING, tuple(Granularity), "-",
                               "a test's outside plugin"),
                    personal=lambda o: functools.partial(OutputDelta, rank=int(o["rank"])),
                    defaults={"rank": 2}))
    ''')


@pytest.fixture(scope="module")
def registries():
  """The outside plugin's registration stays in this module."""
  load_plugins()
  saved = dict(METHODS._entries), dict(METHODS._origins)
  yield
  METHODS._entries, METHODS._origins = saved


@pytest.fixture(scope="module")
def runs(tmp_path_factory, registries):
  root = tmp_path_factory.mktemp("capabilities")
  plugin = root / "output_delta_plugin.py"
  plugin.write_text(OUTSIDE)
  out = {}
  for method, extra in (("lora", {}), ("ia3", {}),
                        ("output_delta", {"plugins": str(plugin)})):
    workdir = root / method
    assert main(["run", f"{SPEC},method={method},granularity=user", "--workdir", str(workdir),
                 *cli_overrides(extra)]) == 0
    out[method] = workdir
  return out


def a_user(workdir):
  record = json.loads((workdir / "predictions.jsonl").read_text().splitlines()[-1])
  return record["user_id"], record["group"]


@pytest.mark.parametrize("method", ["lora", "ia3", "output_delta"])
def test_merged_export_computes_the_personalized_model(runs, tmp_path, method):
  user, group = a_user(runs[method])
  assert main(["export", str(runs[method]), "--user", user, "--format", "merged",
               "--out", str(tmp_path / "m")]) == 0
  config = hf_loader.read_config(tmp_path / "m")
  model, _ = personalized_model(open_run(runs[method]))
  merged = build(config, hf_loader.read_weights(tmp_path / "m", config))
  ids = np.random.default_rng(0).integers(3, config.vocab_size, size=(2, 7))
  want = np.asarray(model(ids, group_ids=np.array([group, group])))
  assert np.abs(want - np.asarray(model(ids, base_only=True))).max() > 1e-5  # trained
  np.testing.assert_allclose(np.asarray(merged(ids)), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["lora", "output_delta"])
def test_peft_export_then_init_adapter_gives_the_users_rows_back(runs, tmp_path, method):
  user, group = a_user(runs[method])
  assert main(["export", str(runs[method]), "--user", user, "--format", "peft",
               "--out", str(tmp_path / "p")]) == 0
  run = open_run(runs[method])
  module = getattr(run.stack, method)
  trained = row_tables(module, group)
  delta = peft_format.read_peft(tmp_path / "p")
  assert delta.targets == module.low_rank_delta(trained).targets
  model, _ = personalized_model(run)
  fresh = getattr(model.personal, method)
  for name, table in fresh.tables().items():
    getattr(fresh, name)[...] = np.zeros(table.shape, table.dtype)
  assert init_from(model, tmp_path / "p") == fresh.groups
  for name, table in fresh.tables().items():
    for row in (0, fresh.groups - 1):  # every row starts as the user's adapter
      np.testing.assert_allclose(np.asarray(table[row]), trained[name], rtol=1e-6, atol=1e-7)


def test_a_module_without_the_capability_is_a_one_line_error(runs, tmp_path, capsys):
  user, _ = a_user(runs["ia3"])
  assert main(["export", str(runs["ia3"]), "--user", user, "--format", "peft",
               "--out", str(tmp_path / "p")]) == 2
  assert "not a low-rank delta" in capsys.readouterr().err
