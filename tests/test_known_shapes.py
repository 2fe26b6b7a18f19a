"""Known architectures: published shapes convert to the right LlamaConfig, and families the
decoder does not build yet are refused in one line rather than built as a Llama."""
import pytest

from perjax.cli import main
from perjax.errors import PerjaxError
from perjax.models.known_configs import KNOWN_SHAPES, buildable, known_config


def test_llama_3_1_8b_has_its_published_size():
  c = known_config("llama-3.1-8b")
  d, f, L, V = c.hidden_size, c.intermediate_size, c.num_layers, c.vocab_size
  kv = c.num_kv_heads * c.head_dim
  per_layer = d * d * 2 + d * kv * 2 + 3 * d * f + 2 * d
  total = L * per_layer + 2 * V * d + d  # untied embeddings and LM head
  assert 8.0e9 < total < 8.1e9  # 8.03 B parameters as published
  assert dict(c.rope_scaling)["factor"] == 8.0 and c.eos_token_ids == (128001, 128008, 128009)


def test_qwen2_shapes_get_their_qkv_bias():
  assert known_config("qwen2.5-1.5b").attention_bias
  assert not known_config("llama-3.2-1b").attention_bias


@pytest.mark.parametrize("name", [n for n in KNOWN_SHAPES if not buildable(n)])
def test_unbuilt_family_is_refused_in_one_line(name):
  with pytest.raises(PerjaxError) as e:
    known_config(name)
  msg = str(e.value)
  assert "\n" not in msg and KNOWN_SHAPES[name]["model_type"] in msg and "llama" in msg


def test_unknown_name_lists_buildable_shapes():
  with pytest.raises(PerjaxError, match="llama-3.1-8b"):
    known_config("llama-9")


def test_models_list_shows_known_shapes(capsys):
  assert main(["models", "list"]) == 0
  out = capsys.readouterr().out
  for name in KNOWN_SHAPES:
    assert name in out
