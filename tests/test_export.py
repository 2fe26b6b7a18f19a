"""peft LoRA folders in and out of perjax, without torch: files written by hand with safetensors,
checked against peft's documented convention (W + B A * lora_alpha / r, [out, in] weights)."""
import functools
import json

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from perjax.modules.lora import LoRA
from perjax.checkpoint import export_group, load_groups
from perjax.cli import main
from perjax.errors import ConfigError
from perjax.export import peft_format
from perjax.export.adapters import init_from
from perjax.models.llama import Llama, tiny_llama_config
from perjax.models.personal import single

CFG = tiny_llama_config()  # hidden 42, q 6 heads x 14 = 84, k/v 2 heads x 14 = 28, 3 layers
OUT = {"q_proj": 84, "v_proj": 28}


def write_peft(folder, *, rank=3, alpha=5, seed=0, **extra):
  rng = np.random.default_rng(seed)
  tensors = {}
  for i in range(CFG.num_layers):
    for module, dout in OUT.items():
      stem = f"base_model.model.model.layers.{i}.self_attn.{module}"
      tensors[f"{stem}.lora_A.weight"] = rng.normal(size=(rank, 42)).astype(np.float32)
      tensors[f"{stem}.lora_B.weight"] = rng.normal(size=(dout, rank)).astype(np.float32) * .1
  folder.mkdir(parents=True, exist_ok=True)
  save_file(tensors, str(folder / "adapter_model.safetensors"))
  config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha,
            "target_modules": ["q_proj", "v_proj"], "bias": "none", **extra}
  (folder / "adapter_config.json").write_text(json.dumps(config))
  return tensors


def tiny_lora_model(groups=2, alpha=5.0, rank=3):
  factory = functools.partial(LoRA, rank=rank, alpha=alpha, targets=("q", "v"))
  return Llama(CFG, personal=single(factory, groups, name="lora"), rngs=nnx.Rngs(0))


def test_peft_import_then_export_gives_identical_tensors(tmp_path):
  original = write_peft(tmp_path / "peft")
  assert main(["import-adapter", str(tmp_path / "peft"), "--out", str(tmp_path / "group")]) == 0
  model = tiny_lora_model()
  load_groups(model, {1: tmp_path / "group"})
  export_group(model, 1, tmp_path / "row1")
  assert main(["export", str(tmp_path / "row1"), "--format", "peft",
               "--out", str(tmp_path / "back")]) == 0
  back = load_file(str(tmp_path / "back" / "adapter_model.safetensors"))
  assert sorted(back) == sorted(original)
  for key, value in original.items():
    np.testing.assert_array_equal(back[key], value, err_msg=key)
  config = json.loads((tmp_path / "back" / "adapter_config.json").read_text())
  assert (config["r"], config["lora_alpha"], config["target_modules"]) == (3, 5,
                                                                          ["q_proj", "v_proj"])


@pytest.mark.parametrize("alpha", [5.0, 16.0])
def test_imported_adapter_acts_as_peft_defines_it(tmp_path, alpha):
  """Row 1 after the import computes what the base model does with W + B A * 5 / 3 merged in
  (peft's definition), also when the receiving LoRA has another alpha."""
  tensors = write_peft(tmp_path / "peft", rank=3, alpha=5)
  model = tiny_lora_model(alpha=alpha)
  load_groups(model, {1: peft_to_group(tmp_path)})
  reference = Llama(CFG, rngs=nnx.Rngs(0))  # the same base weights (drawn before the adapters)
  ids = np.random.default_rng(1).integers(3, CFG.vocab_size, size=(2, 9))
  np.testing.assert_array_equal(model(ids, base_only=True), reference(ids))
  for proj, field in (("q_proj", "q"), ("v_proj", "v")):
    w = np.array(getattr(reference.layers, field)[...])
    for i in range(CFG.num_layers):
      stem = f"base_model.model.model.layers.{i}.self_attn.{proj}"
      delta = tensors[f"{stem}.lora_B.weight"] @ tensors[f"{stem}.lora_A.weight"] * 5 / 3
      w[i] += delta.T  # peft's [out, in] delta in perjax's [in, out] layout
    getattr(reference.layers, field)[...] = w
  got = model(ids, group_ids=np.array([1, 1]))
  np.testing.assert_allclose(got, reference(ids), rtol=1e-5, atol=1e-5)
  # row 0 is untouched: the base model
  np.testing.assert_array_equal(model(ids, group_ids=np.array([0, 0])), model(ids, base_only=True))


def peft_to_group(tmp_path):
  assert main(["import-adapter", str(tmp_path / "peft"), "--out", str(tmp_path / "g")]) == 0
  return tmp_path / "g"


def test_init_from_peft_sets_every_row(tmp_path):
  write_peft(tmp_path / "peft")
  model = tiny_lora_model(groups=4)
  assert init_from(model, tmp_path / "peft") == 4
  a = np.asarray(model.personal.lora.q_a[...])
  assert np.abs(a).sum() > 0
  for g in range(1, 4):
    np.testing.assert_array_equal(a[g], a[0])


def test_init_from_names_the_rank_to_set(tmp_path):
  write_peft(tmp_path / "peft", rank=2)
  with pytest.raises(ConfigError, match="methods.lora.rank=2"):
    init_from(tiny_lora_model(rank=3), tmp_path / "peft")


@pytest.mark.parametrize("extra, problem", [({"use_dora": True}, "use_dora"),
                                            ({"bias": "all"}, "bias"),
                                            ({"peft_type": "IA3"}, "peft_type")])
def test_unsupported_peft_folders_are_one_line_errors(tmp_path, extra, problem, capsys):
  write_peft(tmp_path / "peft", **extra)
  assert main(["import-adapter", str(tmp_path / "peft"), "--out", str(tmp_path / "g")]) == 2
  err = capsys.readouterr().err.strip()
  assert problem in err and len(err.splitlines()) == 1


def test_rslora_adapters_keep_their_scale(tmp_path):
  write_peft(tmp_path / "peft", rank=4, alpha=8, use_rslora=True)  # scale 8 / sqrt(4)
  assert peft_format.read_peft(tmp_path / "peft").scale == pytest.approx(4.0)


def test_combined_loras_sum_their_products():
  rng = np.random.default_rng(0)
  def lora(rank, alpha, targets):
    tables = {}
    for t in targets:
      tables[f"{t}_a"] = rng.normal(size=(2, 5, rank)).astype(np.float32)
      tables[f"{t}_b"] = rng.normal(size=(2, rank, 7)).astype(np.float32)
    return peft_format.LoraRows(rank, alpha, targets, tables)
  one, two = lora(2, 4.0, ("q", "v")), lora(3, 1.5, ("v",))
  both = peft_format.combine([one, two])
  assert (both.rank, both.scale, both.targets) == (5, 1.0, ("q", "v"))
  product = lambda l, t: np.einsum("lir,lro->lio", l.tables[f"{t}_a"], l.tables[f"{t}_b"]) * l.scale
  np.testing.assert_allclose(product(both, "q"), product(one, "q"), rtol=1e-5)
  np.testing.assert_allclose(product(both, "v"), product(one, "v") + product(two, "v"), rtol=1e-5)


def hand_made_run(tmp_path, levels):
  """A FinishedRun of LoRA modules at `levels` (None: the run's user level), no training."""
  import ml_collections
  from perjax.export.finished_run import FinishedRun
  from perjax.models.llama import dims
  from perjax.models.personal import ModuleSpec, build_stack
  factory = functools.partial(LoRA, rank=2, alpha=4.0, targets=("q",))
  specs = [ModuleSpec("lora" if level is None else f"lora_at_{level}", level, factory)
           for level in levels]
  groups = {None: 3, "persona": 2, "global": 1}
  stack = build_stack(specs, {l: groups[l] for l in levels}, dims(CFG), nnx.Rngs(0))
  config = ml_collections.ConfigDict({"granularity": "user", "method": "lora"})
  records = [{"user_id": "u1", "group": 1}, {"user_id": "u2", "group": 2}]
  return FinishedRun(tmp_path, config, CFG, stack, records)


def test_selection_of_rows_by_granularity(tmp_path):
  from perjax.export.finished_run import select
  run = hand_made_run(tmp_path, (None, "global"))
  assert [(n, row) for n, _, row in select(run, user="u2")] == [("lora", 2), ("lora_at_global", 0)]
  assert [(n, row) for n, _, row in select(run, level="global")] == [("lora_at_global", 0)]
  with pytest.raises(ConfigError, match="no personal module"):
    select(run, level="persona", row=0)
  with pytest.raises(ConfigError, match="exactly one"):
    select(run, user="u1", level="global")
  persona_run = hand_made_run(tmp_path, ("persona", None))
  assert [(n, row) for n, _, row in select(persona_run, level="persona", row=1)] == [("lora_at_persona", 1)]
  with pytest.raises(ConfigError, match="--persona ROW"):  # its row for u1 is not recorded
    select(persona_run, user="u1")
  with pytest.raises(ConfigError, match="records no persona names"):
    select(persona_run, level="persona", row="p1")
  persona_run.names = {"user": ["u0", "u1", "u2"], "persona": ["p0", "p1"]}
  assert [(n, row) for n, _, row in select(persona_run, level="persona", row="p1")] == [("lora_at_persona", 1)]
  with pytest.raises(ConfigError, match=r"'p7' is not one of \['p0', 'p1'\]"):
    select(persona_run, level="persona", row="p7")
