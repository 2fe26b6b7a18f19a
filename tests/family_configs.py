"""Tiny decoder configurations of every supported family, with odd sizes, read through
`LlamaConfig.from_hf` from `config.json`-style dicts (so the families' parsing is exercised)."""
from perjax.models.families import SUPPORTED
from perjax.models.llama import LlamaConfig

_COMMON = dict(vocab_size=67, hidden_size=30, intermediate_size=38, num_hidden_layers=3,
               num_attention_heads=3, num_key_value_heads=1, head_dim=10,
               max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
               tie_word_embeddings=False)

_FAMILY = {
    "llama": {},
    "qwen2": {},
    "mistral": dict(sliding_window=4),
    "qwen3": {},
    "gemma2": dict(sliding_window=4, query_pre_attn_scalar=12, attn_logit_softcapping=5.0,
                   final_logit_softcapping=10.0, hidden_activation="gelu_pytorch_tanh"),
    "gemma3_text": dict(sliding_window=4, query_pre_attn_scalar=12, sliding_window_pattern=2,
                        rope_local_base_freq=10000.0, rope_theta=1e6,
                        rope_scaling={"rope_type": "linear", "factor": 2.0},
                        hidden_activation="gelu_pytorch_tanh"),
    "phi3": dict(sliding_window=5),
}
assert tuple(_FAMILY) == SUPPORTED


def tiny_family_config(family: str) -> LlamaConfig:
  return LlamaConfig.from_hf({**_COMMON, "model_type": family, **_FAMILY[family]})
