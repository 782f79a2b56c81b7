"""A tiny, untrained level student built from config in seconds (no download, no training).

Load it the way the other fakes are loaded (tests are not a package)::

    support = load(Path(__file__).resolve().parents[1] / "fakes" / "jac_support.py")
    tiny = support.load_fake("tiny_student")
    model_dir = tiny.build_tiny_student(tmp_path / "student")

The model is ``micro-1m`` with random weights and a character tokenizer
trained on one level, which is all masked decoding needs to write a
well-formed level (validity then depends on the sample: untrained models fail
only the connectivity/density gates the mask cannot force).
:func:`promote_tiny_student` puts it in a data dir's model registry as the
promoted version of a site, the way ``python -m generator.train`` would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The spec the tokenizer's one example level is written for.
TOKENIZER_SPEC: dict[str, Any] = {
    "width": 16, "height": 12, "difficulty": 1, "enemies": 0, "items": 0, "theme": "crypt",
}


def build_tiny_student(out: str | Path, *, preset: str = "micro-1m", seed: int = 0) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``tokenizer.json`` of an untrained student to ``out``."""
    from generator.local.codec import encode_example
    from trainer.model import build_model
    from trainer.tokenizer import train_tokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    level = {"rows": ["#" * 16] + ["#" + "." * 14 + "#"] * 10 + ["#" * 16], "spawn": {"x": 1, "y": 1},
             "exit": {"x": 5, "y": 5}, "enemies": [], "items": []}
    tok = train_tokenizer([encode_example("level", TOKENIZER_SPEC, level)])
    build_model("micro", preset, vocab_size=tok.get_vocab_size(), seed=seed).save_pretrained(
        out, safe_serialization=True)
    tok.save(str(out / "tokenizer.json"))
    return out


def promote_tiny_student(data_dir: str | Path, model_dir: str | Path, site: str | None = None) -> str:
    """Add ``model_dir`` as a new version of ``site`` (default: the level site) and promote it; return the version."""
    from generator.store.callsite import LEVEL_SITE
    from generator.local.registry import Registry

    site = site or LEVEL_SITE
    registry = Registry(Path(data_dir) / "models")
    version = registry.add_version(site, model_dir, {"base": "micro", "preset": "micro-1m", "state": "passed"})
    registry.promote(site, version)
    return version
