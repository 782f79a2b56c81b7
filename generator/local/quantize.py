"""Quantization the student runtime applies on load (the trainer only judges its effect).

``LocalStudent.load(dir, quantize="int8")`` calls :func:`quantize_int8`, so the
registry stores safetensors only, never pickled quantized modules.  It lives
here, not in ``trainer``, because the game's runtime must not import the
trainer (``tests/test_layers.py``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["int8_state_bytes", "quantize_int8"]


def quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantization of every ``nn.Linear`` (weights int8, activations quantized per batch).

    The CPU runtime's choice: 3.4-6x faster generation than fp32 on this
    machine kind (DESIGN.md), no calibration data, no new dependency.
    """
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    model.eval()
    with warnings.catch_warnings():
        # torch marks quantized tensor constructors deprecated in favour of torchao; they still work.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def int8_state_bytes(model: Any) -> int:
    """Bytes of a (quantized) model's state: int8 packed weights count one byte per value."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()
