"""Local students: the compact text form, masked decoding and the inference backend.

Importing this package does not import torch; loading a model does.

* :mod:`generator.local.codec` -- ``encode_prompt`` / ``encode_example`` / ``decode_result`` per call site.
* :mod:`generator.local.decoding` -- the level grammar, masked (batched) sampling, bounded resampling.
* :mod:`generator.local.student` -- ``LocalStudent.load(dir, quantize="int8")`` and ``StudentBackend``.
* :mod:`generator.local.registry` -- versioned students per call site (the trainer writes, routing reads).
"""

from __future__ import annotations

from generator.local.codec import decode_result, encode_example, encode_prompt
from generator.local.student import LocalStudent, StudentBackend, StudentOutput

__all__ = ["LocalStudent", "StudentBackend", "StudentOutput", "decode_result", "encode_example", "encode_prompt"]
