"""Where each perjax weight lives in a Hugging Face checkpoint: one table for loading, merged
export and peft names, so the three never disagree.

A perjax leaf is a top-level field (`embed`, `final_norm`, `lm_head`) or a `LayerStack` field
stacked on the layer axis. Each comes from one checkpoint tensor, or from a block of rows of a
fused one (Phi-3's `qkv_proj` and `gate_up_proj`): `Part.rows` names that block. Matrices are
stored `[out, in]` by Hugging Face and `[in, out]` by perjax (`Part.transpose`).
"""
import dataclasses

from perjax.models.llama import LlamaConfig


@dataclasses.dataclass(frozen=True)
class Part:
  field: str                          # perjax field
  name: str                           # checkpoint tensor name; `{i}` is the layer index
  transpose: bool = False             # a matrix: `[out, in]` in the checkpoint
  rows: tuple[int, int] | None = None  # a block of the checkpoint tensor's first axis

  def tensor_name(self, layer: int | None = None) -> str:
    return self.name.format(i=layer)


_LAYER = "model.layers.{i}."

# perjax projection -> its module inside a decoder layer (peft's target names end with these)
PROJECTION_MODULES = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
                      "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
                      "down": "mlp.down_proj"}

_LLAMA_VECTORS = {"attn_norm": "input_layernorm.weight",
                  "mlp_norm": "post_attention_layernorm.weight",
                  "q_bias": "self_attn.q_proj.bias", "k_bias": "self_attn.k_proj.bias",
                  "v_bias": "self_attn.v_proj.bias"}


def layer_parts(config: LlamaConfig, fields=None) -> list[Part]:
  """The per-layer parts of `config`'s family. `fields`: only those present in the model
  (optional leaves such as biases); all of the family's by default."""
  parts = [Part(f, _LAYER + m + ".weight", transpose=True) for f, m in PROJECTION_MODULES.items()]
  parts += [Part(f, _LAYER + name) for f, name in _LLAMA_VECTORS.items()]
  if fields is not None:
    parts = [p for p in parts if p.field in fields]
  return parts


def top_parts(config: LlamaConfig) -> list[Part]:
  parts = [Part("embed", "model.embed_tokens.weight"), Part("final_norm", "model.norm.weight")]
  if not config.tie_embeddings:
    parts.append(Part("lm_head", "lm_head.weight", transpose=True))
  return parts
