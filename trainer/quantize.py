"""The runtime artefact: merged weights, and the re-check of int8 quantization.

:func:`merge_lora` turns a training output into one plain model folder
(``config.json``, ``model.safetensors``, ``tokenizer.json``): a peft adapter
folder is merged into its base; a folder that is already plain is copied.
The student runtime loads that folder and quantizes it on load
(``LocalStudent.load(dir, quantize="int8")`` ->
:func:`generator.local.quantize.quantize_int8`), so the
registry stores safetensors only, never pickled quantized modules.

Quantization must not cost quality: :func:`quantization_verdict` compares
the quantized model's validity with the unquantized one's on the same
held-out specs; a drop of more than ``max_validity_drop`` (1 point by
default) means the version is not promoted.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trainer.errors import TrainerError

__all__ = ["MODEL_FILES", "QuantVerdict", "merge_lora", "quantization_verdict"]

log = logging.getLogger(__name__)

#: What a plain model folder holds (optional ones are copied when present).
MODEL_FILES: Final = ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json")
_REQUIRED: Final = ("config.json", "model.safetensors", "tokenizer.json")


def merge_lora(src_dir: str | Path, out_dir: str | Path) -> Path:
    """A plain, merged model folder in ``out_dir`` from a training output in ``src_dir``."""
    src, out = Path(src_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (src / "adapter_config.json").is_file():
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base_name = json.loads((src / "adapter_config.json").read_text()).get("base_model_name_or_path")
        base_dir = Path(base_name) if base_name else None
        if base_dir is None or not (base_dir / "config.json").is_file():
            raise TrainerError(
                f"merge: the adapters in {src} name base {base_name!r}, which is not a local model folder; "
                "set base_model_name_or_path in adapter_config.json to the base's directory"
            )
        if not (src / "adapter_model.safetensors").is_file():
            raise TrainerError(f"merge: {src} has no adapter_model.safetensors (pickled adapters are never read)")
        log.info("merging LoRA adapters in %s into %s", src, base_dir)
        base = AutoModelForCausalLM.from_pretrained(str(base_dir), local_files_only=True, use_safetensors=True)
        merged = PeftModel.from_pretrained(base, str(src), local_files_only=True).merge_and_unload()
        merged.save_pretrained(str(out), safe_serialization=True)
        for cand in (src / "tokenizer.json", base_dir / "tokenizer.json"):
            if cand.is_file():
                shutil.copy2(cand, out / "tokenizer.json")
                break
    else:
        for name in MODEL_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, out / name)
        shards = sorted(src.glob("model-*.safetensors"))
        for shard in shards:
            shutil.copy2(shard, out / shard.name)
        if shards and (src / "model.safetensors.index.json").is_file():
            shutil.copy2(src / "model.safetensors.index.json", out / "model.safetensors.index.json")
    missing = [n for n in _REQUIRED if not (out / n).is_file() and not (n == "model.safetensors" and list(out.glob("model-*.safetensors")))]
    if missing:
        raise TrainerError(f"merge: {src} did not yield {', '.join(missing)}; is it a finished training output?")
    return out


@dataclass(frozen=True)
class QuantVerdict:
    unquantized_validity: float
    quantized_validity: float
    max_drop: float
    label: str = "int8"  #: which quantized artefact ("int8", "gguf q8_0")
    measure: str = "validity"  #: what was compared ("validity", "agreement")

    @property
    def drop(self) -> float:
        return self.unquantized_validity - self.quantized_validity

    @property
    def ok(self) -> bool:
        # a small epsilon so 0.9 - 0.89 is not judged by float noise
        return self.drop <= self.max_drop + 1e-9

    def reason(self) -> str:
        if self.ok:
            return (f"{self.label} {self.measure} {self.quantized_validity:.3f} vs {self.unquantized_validity:.3f} "
                    f"(drop {self.drop:+.3f} within {self.max_drop:.3f})")
        return (f"{self.label} {self.measure} {self.quantized_validity:.3f} is {self.drop:.3f} below unquantized "
                f"{self.unquantized_validity:.3f} (allowed {self.max_drop:.3f}): not promoted")

    def to_dict(self) -> dict[str, Any]:
        return {"unquantized_validity": self.unquantized_validity, "quantized_validity": self.quantized_validity,
                "drop": self.drop, "max_drop": self.max_drop, "ok": self.ok, "reason": self.reason()}


def quantization_verdict(unquantized_validity: float, quantized_validity: float, max_drop: float = 0.01,
                         label: str = "int8", measure: str = "validity") -> QuantVerdict:
    """Is the quantized model good enough to ship?

    >>> quantization_verdict(0.90, 0.895).ok
    True
    >>> quantization_verdict(0.90, 0.88).ok
    False
    """
    return QuantVerdict(float(unquantized_validity), float(quantized_validity), float(max_drop), label, measure)
