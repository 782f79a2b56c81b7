"""Student tokenizers: char tokens for grids, BPE for JSON, saved as tokenizer.json."""

from __future__ import annotations

import pytest

from trainer.errors import TrainerError
from trainer.tokenizer import SPECIAL_TOKENS, load_tokenizer, token_strings, train_tokenizer

GRID = "L 16x12 d1 e0 i0 crypt\n0000003################\n"


def test_char_tokenizer_gives_one_token_per_character_and_round_trips():
    tok = train_tokenizer([GRID])
    enc = tok.encode(GRID, add_special_tokens=False)
    assert len(enc.ids) == len(GRID)
    assert tok.decode(enc.ids) == GRID
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    # splitting the text anywhere splits the ids at the same place (prompt/completion)
    assert tok.encode(GRID[:23]).ids + tok.encode(GRID[23:]).ids == enc.ids


def test_char_tokenizer_knows_printable_ascii_it_never_saw():
    tok = train_tokenizer(["##"])
    assert "<unk>" not in tok.encode('{"kind": "zombie"}\t~').tokens


def test_bpe_tokenizer_is_shorter_on_json_and_saved_as_json(tmp_path):
    texts = ['{"quest":"find the %s","reward":%d}\t{"ok":true}\n' % (w, i) for i, w in enumerate(["sword", "ring", "map"] * 20)]
    bpe = train_tokenizer(texts, kind="bpe", vocab_size=200)
    char = train_tokenizer(texts)
    assert len(bpe.encode(texts[0]).ids) < len(char.encode(texts[0]).ids) / 2
    assert bpe.decode(bpe.encode(texts[0]).ids) == texts[0]
    bpe.save(str(tmp_path / "tokenizer.json"))
    again = load_tokenizer(tmp_path)
    assert again.encode(texts[1]).ids == bpe.encode(texts[1]).ids
    assert token_strings(again)[:4] == list(SPECIAL_TOKENS)


def test_errors_are_clear(tmp_path):
    with pytest.raises(TrainerError, match="unknown"):
        train_tokenizer(["x"], kind="wordpiece")  # type: ignore[arg-type]
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(TrainerError, match="cannot load tokenizer"):
        load_tokenizer(tmp_path)
