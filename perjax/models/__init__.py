"""Models: perjax's own Flax NNX decoders and encoders, loaded from GGUF or Hugging Face folders.

    model, tokenizer = perjax.models.load("smollm2-135m-instruct")
    logits = model(input_ids)                   # [B, T] -> [B, T, V]
    encoder = perjax.models.load_encoder("all-minilm-l6-v2")
    embeddings = encoder.encode(["a text"])     # [N, D], pooled and normalised
"""
from perjax.models.encoder import load_encoder
from perjax.models.decoder_loading import load, load_decoder
from perjax.models.llama import Llama, LlamaConfig, tiny_llama_config
from perjax.models.personal import Personal, PersonalModule, PersonalStack

__all__ = ["load", "load_decoder", "load_encoder", "Llama", "LlamaConfig", "Personal",
           "PersonalModule", "PersonalStack", "tiny_llama_config"]
