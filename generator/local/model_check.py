"""Check a model directory's ``config.json`` before torch allocates anything for it.

``transformers`` builds a model from ``config.json`` first and fills in the
weights after, so a config asking for ``hidden_size`` 10^9 or 10^6 layers
made the loader allocate for minutes until ``MemoryError``, and the error
then named the weights file.  :func:`check_model_dir` reads ``config.json``
(a regular file under 1 MB), checks each dimension against sane bounds, and
checks them against the tensor shapes in the safetensors header (read from
the header only, through the ``safetensors`` library, without loading a
tensor), raising :class:`~generator.errors.ModelLoadError` that names the
file and the field.

The bounds are far above any model this project can serve on one machine
(TinyLlama: hidden 2048, 22 layers, vocabulary 32,000; Llama-3-70B: hidden
8192, 80 layers, vocabulary 128,256), so they refuse only nonsense.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

from generator.errors import ModelLoadError
from generator.guards.inputs import MAX_CONFIG_BYTES, InputFileError, read_file_text

__all__ = ["CONFIG_BOUNDS", "check_model_dir"]

#: Inclusive bounds of each dimension a causal-LM config may give.
CONFIG_BOUNDS: Final[dict[str, tuple[int, int]]] = {
    "vocab_size": (1, 1_000_000),
    "hidden_size": (1, 65_536),
    "intermediate_size": (1, 262_144),
    "num_hidden_layers": (1, 1_024),
    "num_attention_heads": (1, 1_024),
    "num_key_value_heads": (1, 1_024),
    "head_dim": (1, 4_096),
    "max_position_embeddings": (1, 1_048_576),
    # GPT-2 style names
    "n_embd": (1, 65_536),
    "n_layer": (1, 1_024),
    "n_head": (1, 1_024),
    "n_positions": (1, 1_048_576),
    "n_inner": (1, 262_144),
}

#: Names that mean the same dimension in different model families.
_HIDDEN = ("hidden_size", "n_embd")
_LAYERS = ("num_hidden_layers", "n_layer")
_INTER = ("intermediate_size", "n_inner")
_EMBED_KEYS = re.compile(r"(^|\.)(embed_tokens|wte|word_embeddings)\.weight$")
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.")
_UP_PROJ = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.0\.mlp\.(?:up_proj|gate_proj|c_fc|fc1)\.weight$")
#: A safetensors header this big is no model we can serve (TinyLlama's is ~30 kB).
MAX_HEADER_BYTES: Final[int] = 100_000_000


def _first(cfg: dict[str, Any], names: tuple[str, ...]) -> tuple[str, int] | None:
    for name in names:
        if name in cfg and cfg[name] is not None:
            return name, cfg[name]
    return None


def check_config(cfg: Any, path: Path) -> dict[str, Any]:
    """Bounds of every known dimension in a decoded ``config.json`` (``path`` names it in errors)."""
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{path} must hold a JSON object (a model config), got {type(cfg).__name__}")
    sections = [cfg] + [v for k, v in cfg.items() if k.endswith("_config") and isinstance(v, dict)]
    for section in sections:
        for field, (lo, hi) in CONFIG_BOUNDS.items():
            if field not in section or section[field] is None:
                continue
            value = section[field]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelLoadError(f"{path}: {field}={value!r:.40} must be an integer in {lo:,}..{hi:,}; "
                                     "fix config.json or retrain")
            if not lo <= value <= hi:
                raise ModelLoadError(f"{path}: {field}={value:,} is outside the sane range {lo:,}..{hi:,}; "
                                     "the file is damaged or not a model this project can load")
    return cfg


def _header_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header, without reading a tensor."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
        if n > min(MAX_HEADER_BYTES, max(size - 8, 0)):
            raise ValueError(f"header length {n:,} does not fit the file ({size:,} bytes)")
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            return {key: list(f.get_slice(key).get_shape()) for key in f.keys()}
    except Exception as exc:  # noqa: BLE001 - any unreadable header is one clear error
        raise ModelLoadError(f"{path} is not a readable safetensors file ({exc}); retrain or roll back") from None


def _weights_shapes(model_dir: Path) -> tuple[dict[str, list[int]], str] | None:
    """Shapes of every tensor in the directory's safetensors weights (one file or an index of shards)."""
    single = model_dir / "model.safetensors"
    if single.is_file():
        return _header_shapes(single), single.name
    index = model_dir / "model.safetensors.index.json"
    if not index.is_file():
        return None
    try:
        doc = json.loads(read_file_text(index, max_bytes=MAX_CONFIG_BYTES * 10, what="weights index"))
        shards = sorted(set(doc["weight_map"].values()))
    except (InputFileError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"{index} is not a readable weights index ({exc})") from None
    shapes: dict[str, list[int]] = {}
    for shard in shards:
        if Path(shard).name != shard:
            raise ModelLoadError(f"{index} names a shard outside the directory: {shard!r:.80}")
        shapes.update(_header_shapes(model_dir / shard))
    return shapes, index.name


def check_against_weights(cfg: dict[str, Any], shapes: dict[str, list[int]], config_path: Path, weights: str) -> None:
    """The config's dimensions must be the ones the weights were saved with."""
    hidden = _first(cfg, _HIDDEN)
    embed = next((k for k in shapes if _EMBED_KEYS.search(k)), None)
    if embed is not None and len(shapes[embed]) == 2:
        rows, cols = shapes[embed]
        vocab = cfg.get("vocab_size")
        if hidden is not None and hidden[1] != cols:
            raise ModelLoadError(f"{config_path}: {hidden[0]}={hidden[1]:,} but {weights} holds {embed} of shape "
                                 f"[{rows}, {cols}]; config.json does not describe these weights")
        if isinstance(vocab, int) and vocab != rows:
            raise ModelLoadError(f"{config_path}: vocab_size={vocab:,} but {weights} holds {embed} of shape "
                                 f"[{rows}, {cols}]; config.json does not describe these weights")
    layers = _first(cfg, _LAYERS)
    indices = {int(m.group(1)) for k in shapes if (m := _LAYER_INDEX.search(k))}
    if layers is not None and indices and layers[1] != max(indices) + 1:
        raise ModelLoadError(f"{config_path}: {layers[0]}={layers[1]:,} but {weights} holds {max(indices) + 1} "
                             "layers; config.json does not describe these weights")
    inter = _first(cfg, _INTER)
    up = next((k for k in shapes if _UP_PROJ.search(k)), None)
    if inter is not None and up is not None and inter[1] not in shapes[up]:
        raise ModelLoadError(f"{config_path}: {inter[0]}={inter[1]:,} but {weights} holds {up} of shape "
                             f"{shapes[up]}; config.json does not describe these weights")


def check_model_dir(model_dir: str | Path, *, require_weights: bool = True) -> dict[str, Any]:
    """Check ``model_dir/config.json`` (bounds, then against the weights' header); return the config.

    Raises :class:`ModelLoadError` naming the file and the field.  With
    ``require_weights=False`` a directory without safetensors weights gets
    the bounds check only (the loader then reports the missing weights).
    """
    model_dir = Path(model_dir)
    path = model_dir / "config.json"
    try:
        text = read_file_text(path, max_bytes=MAX_CONFIG_BYTES, what="model config")
    except InputFileError as exc:
        raise ModelLoadError(f"{exc}; retrain or roll back") from None
    try:
        cfg = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({str(exc)[:120]}); retrain or roll back") from None
    check_config(cfg, path)
    found = _weights_shapes(model_dir)
    if found is None:
        if require_weights:
            raise ModelLoadError(f"{model_dir}: model.safetensors is missing; retrain or roll back")
        return cfg
    check_against_weights(cfg, found[0], path, found[1])
    return cfg
