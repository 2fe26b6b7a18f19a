"""Where each perjax weight lives in a Hugging Face checkpoint: one table for loading, merged
export and peft names, so the three never disagree.

A perjax leaf is a top-level field (`embed`, `final_norm`, `lm_head`) or a `LayerStack` field
stacked on the layer axis, and comes from one checkpoint tensor. Matrices are stored
`[out, in]` by Hugging Face and `[in, out]` by perjax (`Part.transpose`).
"""
import dataclasses

from perjax.models.llama import LlamaConfig


@dataclasses.dataclass(frozen=True)
class Part:
  field: str                          # perjax field
  name: str                           # checkpoint tensor name; `{i}` is the layer index
  transpose: bool = False  # a matrix: `[out, in]` in the checkpoint
  # a block `[start, stop)` of the checkpoint tensor's first axis: one projection of a fused
  # tensor (Phi-3's `qkv_proj`); None: the whole tensor
  rows: tuple[int, int] | None = None

  def tensor_name(self, layer: int | None = None) -> str:
    return self.name.format(i=layer)

  def take(self, tensor):
    """This part of a checkpoint `tensor` (numpy or lazy slice), in perjax layout."""
    w = tensor if self.rows is None else tensor[self.rows[0]:self.rows[1]]
    return w.T if self.transpose else w


_LAYER = "model.layers.{i}."

# perjax projection -> its module inside a decoder layer (peft's target names end with these)
PROJECTION_MODULES = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
                      "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
                      "down": "mlp.down_proj"}

# Phi-3 keeps q, k, v in one `qkv_proj` and gate, up in one `gate_up_proj` (rows in that order)
FUSED_MODULES = {"qkv": ("self_attn.qkv_proj", ("q", "k", "v")),
                 "gate_up": ("mlp.gate_up_proj", ("gate", "up"))}

_LLAMA_VECTORS = {"attn_norm": "input_layernorm.weight",
                  "mlp_norm": "post_attention_layernorm.weight",
                  "q_bias": "self_attn.q_proj.bias", "k_bias": "self_attn.k_proj.bias",
                  "v_bias": "self_attn.v_proj.bias",
                  "q_norm": "self_attn.q_norm.weight", "k_norm": "self_attn.k_norm.weight"}

# Gemma's four norms: llama's `post_attention_layernorm` is Gemma's norm on the attention output
_GEMMA_NORMS = {"attn_norm": "input_layernorm.weight",
                "post_attn_norm": "post_attention_layernorm.weight",
                "mlp_norm": "pre_feedforward_layernorm.weight",
                "post_mlp_norm": "post_feedforward_layernorm.weight",
                "q_norm": "self_attn.q_norm.weight", "k_norm": "self_attn.k_norm.weight"}


def layer_parts(config: LlamaConfig) -> list[Part]:
  """The per-layer parts of `config`'s family; optional ones (biases, q/k norms) may be absent."""
  vectors = _GEMMA_NORMS if config.sandwich_norms else _LLAMA_VECTORS
  vectors = [Part(f, _LAYER + name) for f, name in vectors.items()]
  if config.family == "phi3":
    return _fused_projection_parts(config) + vectors
  parts = [Part(f, _LAYER + m + ".weight", transpose=True) for f, m in PROJECTION_MODULES.items()]
  return parts + vectors


def _fused_projection_parts(config: LlamaConfig) -> list[Part]:
  from perjax.models.llama import projection_shapes
  widths = {name: out for name, (_, out) in projection_shapes(config).items()}
  parts, fused = [], set()
  for module, names in FUSED_MODULES.values():
    start = 0
    for name in names:
      parts.append(Part(name, _LAYER + module + ".weight", transpose=True,
                        rows=(start, start + widths[name])))
      start += widths[name]
      fused.add(name)
  return parts + [Part(f, _LAYER + m + ".weight", transpose=True)
                  for f, m in PROJECTION_MODULES.items() if f not in fused]


def top_parts(config: LlamaConfig) -> list[Part]:
  parts = [Part("embed", "model.embed_tokens.weight"), Part("final_norm", "model.norm.weight")]
  if not config.tie_embeddings:
    parts.append(Part("lm_head", "lm_head.weight", transpose=True))
  return parts
