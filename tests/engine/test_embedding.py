"""The examples in docs/embedding.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

from engine.core import content
from engine.core import game as game_module

DOC = Path(__file__).resolve().parents[2] / "docs" / "embedding.md"


def _example(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    return re.search(rf"## {heading}.*?```python\n(.*?)```", text, re.S).group(1)


def test_embedding_example_runs(capsys, monkeypatch):
    example = _example("A complete example")
    monkeypatch.setattr(game_module, "ITEM_EFFECTS", dict(game_module.ITEM_EFFECTS))
    exec(compile(example, str(DOC), "exec"), {"__name__": "embedding_example"})  # noqa: S102 - our own doc
    out = capsys.readouterr().out.splitlines()
    level_lines = [ln for ln in out if " fun " in ln]
    assert len(level_lines) == 3
    assert all("completed" in ln or "died" in ln for ln in level_lines)
    assert out[-1].endswith("last: LevelScored")


def test_own_art_and_content_example_runs(capsys, monkeypatch):
    example = _example("Your own art and content")
    monkeypatch.setattr(game_module, "ITEM_EFFECTS", dict(game_module.ITEM_EFFECTS))
    monkeypatch.setitem(content.ENEMY_KINDS, "wraith", None)  # undone after the test: the kind is removed
    exec(compile(example, str(DOC), "exec"), {"__name__": "embedding_art_example"})  # noqa: S102 - our own doc
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "wraith hp 7 attack 3"  # the rules used the new catalogue entry
    assert out[1].startswith("won") and "amulet picked up: True" in out[1]
    assert out[2] == "drawn (160, 80) wraith pixel (120, 200, 255)"  # drawn with the added picture
