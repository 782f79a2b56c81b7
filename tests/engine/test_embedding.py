"""The example in docs/embedding.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

from engine.core import game as game_module

DOC = Path(__file__).resolve().parents[2] / "docs" / "embedding.md"


def test_embedding_example_runs(capsys, monkeypatch):
    text = DOC.read_text(encoding="utf-8")
    example = re.search(r"## A complete example.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.setattr(game_module, "ITEM_EFFECTS", dict(game_module.ITEM_EFFECTS))
    exec(compile(example, str(DOC), "exec"), {"__name__": "embedding_example"})  # noqa: S102 - our own doc
    out = capsys.readouterr().out.splitlines()
    level_lines = [ln for ln in out if " fun " in ln]
    assert len(level_lines) == 3
    assert all("completed" in ln or "died" in ln for ln in level_lines)
    assert out[-1].endswith("last: LevelScored")
