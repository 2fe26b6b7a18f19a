"""Known architectures: published shapes convert to the right LlamaConfig with each family's
differences, and an unsupported family is refused in one line naming the supported ones."""
import json

import pytest

from perjax.cli import main
from perjax.errors import PerjaxError
from perjax.models import hf_loader
from perjax.models.families import SUPPORTED
from perjax.models.known_configs import KNOWN_SHAPES, known_config
from perjax.models.llama import parameter_count


def test_llama_3_1_8b_has_its_published_size():
  c = known_config("llama-3.1-8b")
  d, f, L, V = c.hidden_size, c.intermediate_size, c.num_layers, c.vocab_size
  kv = c.num_kv_heads * c.head_dim
  per_layer = d * d * 2 + d * kv * 2 + 3 * d * f + 2 * d
  total = L * per_layer + 2 * V * d + d  # untied embeddings and LM head
  assert 8.0e9 < total < 8.1e9  # 8.03 B parameters as published
  assert parameter_count(c) == total
  assert dict(c.rope_scaling)["factor"] == 8.0 and c.eos_token_ids == (128001, 128008, 128009)


def test_qwen2_shapes_get_their_qkv_bias():
  assert known_config("qwen2.5-1.5b").attention_bias
  assert not known_config("llama-3.2-1b").attention_bias


def test_family_differences_come_from_the_published_configs():
  g2, g3, q3 = known_config("gemma-2-2b"), known_config("gemma-3-4b"), known_config("qwen3-8b")
  assert (g2.attn_softcap, g2.final_softcap, g2.norm_offset) == (50.0, 30.0, 1.0)
  assert g2.sliding_layers[:4] == (True, False, True, False) and g2.sliding_window == 4096
  assert g2.query_scale == pytest.approx(256 ** -0.5) and g2.activation == "gelu_tanh"
  assert g3.sliding_layers[:6] == (True,) * 5 + (False,) and g3.local_rope_theta == 10000.0
  assert dict(g3.rope_scaling) == {"rope_type": "linear", "factor": 8.0}
  assert g3.qk_norm and g3.sandwich_norms and g3.attn_softcap is None
  assert q3.qk_norm and not q3.sandwich_norms and not q3.attention_bias
  assert known_config("mistral-7b").sliding_layers == (True,) * 32
  assert 3.7e9 < parameter_count(known_config("phi-3-mini")) < 3.9e9  # 3.8 B as published
  assert 2.5e9 < parameter_count(g2) < 2.7e9  # 2.6 B


@pytest.mark.parametrize("model_type", ["gpt2", None])
def test_unsupported_family_is_refused_in_one_line(tmp_path, model_type):
  (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
  with pytest.raises(PerjaxError) as e:
    hf_loader.read_config(tmp_path)
  msg = str(e.value)
  assert "\n" not in msg and repr(model_type) in msg and all(f in msg for f in SUPPORTED)


def test_unknown_name_lists_buildable_shapes():
  with pytest.raises(PerjaxError, match="llama-3.1-8b"):
    known_config("llama-9")


def test_models_list_shows_known_shapes(capsys):
  assert main(["models", "list"]) == 0
  out = capsys.readouterr().out
  for name in KNOWN_SHAPES:
    assert name in out
