"""A byte-level tokenizer for tiny test models: 256 byte tokens plus three specials."""
import functools


@functools.lru_cache(maxsize=1)
def byte_tokenizer():
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, AddedToken
  from transformers import PreTrainedTokenizerFast

  alphabet = pre_tokenizers.ByteLevel.alphabet()
  vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
  for ch in sorted(alphabet):
    vocab[ch] = len(vocab)
  tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.add_special_tokens([AddedToken(t, special=True) for t in ("<pad>", "<s>", "</s>")])
  template = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
              "{% if add_generation_prompt %}<s>assistant: {% endif %}")
  return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                 pad_token="<pad>", chat_template=template)
