"""Rules presets from YAML files: the file format lives here, outside ``engine.core``.

``engine.core`` reads plain mappings only (``RulesConfig.from_dict``) and
imports no file-format library, so the rules stay a small, headless core
(``tests/test_layers.py`` checks that it never imports yaml).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "easy.yaml"
>>> _ = path.write_text("player_hp: 40\\n", encoding="utf-8")
>>> load_rules(path).player_hp
40
"""

from __future__ import annotations

import os

from engine.core.game import ConfigValueError, RulesConfig

__all__ = ["load_rules"]


def load_rules(path: str | os.PathLike[str]) -> RulesConfig:
    """Load a YAML rules preset (a mapping of ``RulesConfig`` fields; missing ones keep their defaults)."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ConfigValueError(f"{path}: a rules preset must be a mapping of RulesConfig fields")
    return RulesConfig.from_dict(data)
