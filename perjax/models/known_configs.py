"""Architectures of zoo models, for building them with random weights without a download
(throughput benchmarks on machines that cannot fetch the weights; speed doesn't depend on values).

Shapes of SmolLM2-135M-Instruct as published by HuggingFaceTB in its config.json.
"""
from perjax.models.llama import LlamaConfig

KNOWN_CONFIGS = {
    "smollm2-135m-instruct": LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30, num_heads=9,
        num_kv_heads=3, head_dim=64, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_embeddings=True, max_position=8192, bos_token_id=1, eos_token_ids=(2,),
        pad_token_id=2),
}
