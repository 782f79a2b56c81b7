"""Tokenizers for students trained from scratch, built with HF ``tokenizers``.

Two kinds:

``char`` (the default)
    One token per character: every printable ASCII character plus ``\\n`` and
    ``\\t`` and any other character seen in the training texts.  Level grids
    want this: logit masking (:mod:`generator.local.decoding`) forces one
    tile per step, and row lengths are counts of tokens.
``bpe``
    Byte-pair merges learnt on the texts, for generic JSON sites where text is
    long and the grid trick does not apply.  Merges never cross a newline.

Special tokens are the same for both, with fixed ids: ``<pad>`` 0, ``<s>`` 1,
``</s>`` 2, ``<unk>`` 3.  The trainer adds ``<s>``/``</s>`` itself; the
tokenizer adds nothing, so ``encode(a + b) == encode(a) + encode(b)`` for the
char kind (the student relies on it to split prompt from completion).

>>> tok = train_tokenizer(["L 16x12 d1\\n##.#\\n"])
>>> tok.encode("#.#").tokens
['#', '.', '#']
>>> tok.decode(tok.encode("a b\\n").ids)
'a b\\n'
"""

from __future__ import annotations

import logging
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Literal

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from trainer.errors import TrainerError

__all__ = ["BOS", "EOS", "PAD", "SPECIAL_TOKENS", "UNK", "load_tokenizer", "token_strings", "train_tokenizer"]

log = logging.getLogger(__name__)

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS: Final = (PAD, BOS, EOS, UNK)
#: Characters every char tokenizer knows, seen in training or not.
BASE_ALPHABET: Final = "".join(sorted(set(string.printable) - set("\r\x0b\x0c")))

TokenizerKind = Literal["char", "bpe"]


def train_tokenizer(texts: Iterable[str], *, kind: TokenizerKind = "char", vocab_size: int = 512) -> Tokenizer:
    """Build a tokenizer for ``texts``; ``vocab_size`` only matters for ``bpe``."""
    texts = list(texts)
    if kind == "char":
        chars = sorted(set(BASE_ALPHABET).union(*map(set, texts)) - set(SPECIAL_TOKENS))
        vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *chars])}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Split("\n", behavior="isolated")
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=list(BASE_ALPHABET),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
    else:
        raise TrainerError(f"tokenizer kind {kind!r} is unknown; use 'char' or 'bpe'")
    tok.decoder = decoders.Fuse()
    log.info("tokenizer %s: %d tokens", kind, tok.get_vocab_size())
    return tok


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load ``tokenizer.json`` (a file or the directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:
        raise TrainerError(f"cannot load tokenizer {path}: {exc}; re-run training to rebuild it") from exc


def token_strings(tok: Tokenizer) -> list[str]:
    """The surface string of every token id, in id order (special tokens as written)."""
    vocab = tok.get_vocab()
    out = [""] * (max(vocab.values()) + 1)
    for text, i in vocab.items():
        out[i] = text
    return out
