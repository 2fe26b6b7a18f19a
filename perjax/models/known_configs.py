"""Architectures of well-known models, for building them with random weights and no download
(throughput benchmarks, `perjax plan`; speed and memory do not depend on the values).

Each is the shape part of the model's published Hugging Face `config.json` (sizes, heads, rope,
norms, windows), credited to its publisher: SmolLM2 (HuggingFaceTB), Llama 3.x (Meta), Qwen2.5
and Qwen3 (Qwen), Gemma 2 and 3 (Google; Gemma 3 4B's text tower), Phi-3-mini-4k (Microsoft),
Mistral-7B-v0.1 (Mistral AI). They are converted by `LlamaConfig.from_hf`, like a real folder.
"""
from perjax.errors import PerjaxError

_LLAMA3_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}

KNOWN_SHAPES: dict[str, dict] = {
    "smollm2-135m-instruct": dict(
        model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
        num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
        rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
        max_position_embeddings=8192, bos_token_id=1, eos_token_id=2, pad_token_id=2),
    "smollm2-360m-instruct": dict(
        model_type="llama", vocab_size=49152, hidden_size=960, intermediate_size=2560,
        num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5, head_dim=64,
        rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
        max_position_embeddings=8192, bos_token_id=1, eos_token_id=2, pad_token_id=2),
    "llama-3.2-1b": dict(
        model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192,
        num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, head_dim=64,
        rope_theta=500000.0, rope_scaling=_LLAMA3_ROPE, rms_norm_eps=1e-5,
        tie_word_embeddings=True, max_position_embeddings=131072, bos_token_id=128000,
        eos_token_id=[128001, 128008, 128009]),
    "llama-3.1-8b": dict(
        model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
        rope_theta=500000.0, rope_scaling={**_LLAMA3_ROPE, "factor": 8.0}, rms_norm_eps=1e-5,
        tie_word_embeddings=False, max_position_embeddings=131072, bos_token_id=128000,
        eos_token_id=[128001, 128008, 128009]),
    "qwen2.5-1.5b": dict(
        model_type="qwen2", vocab_size=151936, hidden_size=1536, intermediate_size=8960,
        num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        max_position_embeddings=32768, bos_token_id=151643, eos_token_id=151645),
    "qwen2.5-7b": dict(
        model_type="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944,
        num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
        max_position_embeddings=32768, bos_token_id=151643, eos_token_id=151645),
    "qwen3-1.7b": dict(
        model_type="qwen3", vocab_size=151936, hidden_size=2048, intermediate_size=6144,
        num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        attention_bias=False, max_position_embeddings=40960, bos_token_id=151643,
        eos_token_id=151645),
    "qwen3-8b": dict(
        model_type="qwen3", vocab_size=151936, hidden_size=4096, intermediate_size=12288,
        num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
        attention_bias=False, max_position_embeddings=40960, bos_token_id=151643,
        eos_token_id=151645),
    "gemma-2-2b": dict(
        model_type="gemma2", vocab_size=256000, hidden_size=2304, intermediate_size=9216,
        num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
        hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=256, sliding_window=4096,
        final_logit_softcapping=30.0, attn_logit_softcapping=50.0, rope_theta=10000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=True, max_position_embeddings=8192,
        bos_token_id=2, eos_token_id=1, pad_token_id=0),
    "gemma-3-1b": dict(
        model_type="gemma3_text", vocab_size=262144, hidden_size=1152, intermediate_size=6912,
        num_hidden_layers=26, num_attention_heads=4, num_key_value_heads=1, head_dim=256,
        hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=256, sliding_window=512,
        sliding_window_pattern=6, rope_theta=1000000.0, rope_local_base_freq=10000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=True, max_position_embeddings=32768,
        bos_token_id=2, eos_token_id=[1, 106], pad_token_id=0),
    "gemma-3-4b": dict(
        model_type="gemma3_text", vocab_size=262208, hidden_size=2560, intermediate_size=10240,
        num_hidden_layers=34, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
        hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=256, sliding_window=1024,
        sliding_window_pattern=6, rope_theta=1000000.0, rope_local_base_freq=10000.0,
        rope_scaling={"rope_type": "linear", "factor": 8.0}, rms_norm_eps=1e-6,
        tie_word_embeddings=True, max_position_embeddings=131072, bos_token_id=2,
        eos_token_id=[1, 106], pad_token_id=0),
    "phi-3-mini": dict(
        model_type="phi3", vocab_size=32064, hidden_size=3072, intermediate_size=8192,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
        rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=2047,
        max_position_embeddings=4096, bos_token_id=1, eos_token_id=32000, pad_token_id=32000),
    "mistral-7b": dict(
        model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=4096,
        max_position_embeddings=32768, bos_token_id=1, eos_token_id=2),
}


def known_config(name: str):
  """The `LlamaConfig` of a known architecture, by name."""
  from perjax.models.llama import LlamaConfig
  if name not in KNOWN_SHAPES:
    raise PerjaxError(f"no built-in architecture for {name!r}; random weights are available "
                      f"for {', '.join(KNOWN_SHAPES)}")
  return LlamaConfig.from_hf(KNOWN_SHAPES[name])
