"""Typed configuration of a training run, loaded from YAML presets.

A preset (``trainer/presets/<name>.yaml``) has one mapping per section::

    name: quick
    dataset:  {min_examples: 200, heldout_fraction: 0.1, ...}   # DatasetConfig
    train:    {base: micro, model_preset: micro-5m, steps: 1500, ...}  # TrainConfig
    quantize: {int8: true, gguf_types: [f16, q8_0], ...}        # QuantizeConfig
    gates:    {min_validity_lower95: 0.8, ...}                  # GateConfig
    schedule: {min_new_examples: 200, ...}                      # ScheduleConfig

Every field has a default, so a preset names only what it changes.  Unknown
sections or keys are an error that names the key and lists the known ones
(a typo must never silently fall back to a default).  Command-line overrides
use dotted keys: ``train.steps=50``.

>>> cfg = load_preset("tiny-test", overrides=["train.steps=3"])
>>> cfg.name, cfg.train.steps, cfg.train.base
('tiny-test', 3, 'micro')
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec
import yaml

from generator.local.student import LEVEL_TEMPERATURE
from generator.training.bootstrap import SpecRanges
from trainer.errors import TrainerError

__all__ = [
    "PresetError",
    "DatasetConfig",
    "TrainConfig",
    "TrainSection",
    "QuantizeConfig",
    "GateConfig",
    "ScheduleConfig",
    "PipelineConfig",
    "PRESETS_DIR",
    "preset_names",
    "load_preset",
    "from_dict",
    "apply_overrides",
]

PRESETS_DIR: Final = Path(__file__).with_name("presets")


class PresetError(TrainerError):
    """A preset file or override is malformed (unknown key, wrong type, missing file)."""


@dataclass
class DatasetConfig:
    """How the store's records become training pairs."""

    min_examples: int = 20  #: fewer valid, de-duplicated examples than this is a DatasetError
    max_examples: int | None = None  #: newest examples kept at most (None: all)
    heldout_fraction: float = 0.1  #: share of distinct specs held out for evaluation
    max_heldout: int = 200  #: held-out specs at most (evaluation cost grows with it)
    near_duplicate_threshold: float = 0.05  #: share of differing tiles at or below which two levels are duplicates
    fun_weighting: bool = True  #: oversample levels players enjoyed (fun score) where one exists
    fun_oversample: float = 0.5  #: extra draws, as a share of the training set, weighted by fun
    seed: int = 0
    # --bootstrap: specs drawn uniformly from these ranges (generator.training.bootstrap.SpecRanges' defaults)
    bootstrap_width: tuple[int, int] = SpecRanges.width
    bootstrap_height: tuple[int, int] = SpecRanges.height
    bootstrap_enemies: tuple[int, int] = SpecRanges.enemies
    bootstrap_items: tuple[int, int] = SpecRanges.items
    bootstrap_balance_bands: bool = SpecRanges.balance_bands  #: as many small, medium and large levels
    #: level site: pad every row to this many tiles (the largest width, 64), so the tile above is always
    #: the same number of tokens back (generator.local.codec); None keeps rows unpadded
    row_stride: int | None = None


class TrainConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to fine-tune and how: a preset's ``train:`` section, and what :func:`trainer.loop.train` runs.

    One list of fields for both (it used to be two, with different defaults); the
    defaults are the presets' (what ``python -m generator.train`` always gave).

    >>> TrainConfig().lora, TrainConfig(base="smollm2-135m").lora, TrainConfig(base="micro", qlora=True).lora
    (False, True, True)
    """

    base: str = "micro"  #: micro | tinyllama | smollm2-135m | path to a local HF causal LM
    model_preset: str = "micro-5m"  #: architecture preset for --base micro (trainer.model.MICRO_PRESETS)
    tokenizer: str = "char"  #: char | bpe (micro only; pretrained bases bring their own)
    vocab_size: int = 512  #: bpe only
    lora: bool | None = None  #: None: LoRA for pretrained bases (and with qlora), full training for micro
    qlora: bool = False  #: 4-bit nf4 base + LoRA (bitsandbytes)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_layers: int | None = None  #: adapters on the top N decoder layers only (None: all); backward stops below them
    steps: int | None = 1000  #: optimizer steps; None: derive from ``epochs``
    epochs: float = 1.0  #: only when ``steps`` is None
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 2e-3
    min_lr_ratio: float = 0.1  #: cosine schedule floor, as a share of lr
    warmup_steps: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    max_len: int = 1024  #: tokens per example at most (longer ones are cut, with a warning)
    bf16: bool | None = None  #: None: bf16 autocast where the hardware supports it
    eval_every: int = 200
    eval_batches: int = 4
    checkpoint_every: int = 200
    max_minutes: float | None = None  #: stop (with a checkpoint) after this much training time; the LR decays by then
    torch_threads: int | None = None
    seed: int = 0
    # throughput only (the same training, measured by `python -m benchmarks.train`)
    fused_optimizer: bool = True  #: AdamW's fused kernel where torch has one for the device (else foreach)
    compile: bool = False  #: torch.compile each decoder layer; compiling takes 10-90 s, so for runs of minutes

    def __post_init__(self) -> None:
        if self.lora is None:
            self.lora = self.base != "micro" or self.qlora

    @property
    def time_limit_s(self) -> float | None:
        """``max_minutes`` in seconds (None: no limit)."""
        return None if self.max_minutes is None else self.max_minutes * 60.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From a mapping of field names; unknown keys and wrong types are a :class:`PresetError`."""
        return _convert(data, cls, "train")

    def to_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)


#: The name this section had while it was a second class mirroring :class:`TrainConfig`.
TrainSection = TrainConfig


@dataclass
class QuantizeConfig:
    """Runtime artefacts and the re-evaluation of the quantized model."""

    int8: bool = True  #: torch dynamic int8 is the runtime the student loads
    gguf_types: tuple[str, ...] = ("f16", "q8_0")
    max_validity_drop: float = 0.01  #: quantized validity may fall at most this far below unquantized


@dataclass
class GateConfig:
    """Promotion gates on held-out specs (student versus teacher)."""

    eval_specs: int = 50  #: held-out specs the student generates for (at most)
    max_new_tokens: int | None = None  #: None: enough for the largest spec
    temperature: float = LEVEL_TEMPERATURE  #: sampling temperature of level candidates: what students serve at
    serve_tries: int = 1
    """Candidates judged per spec, as ``StudentBackend`` serves them (1: raw first try).
    With more, validity is "valid as served": the first of up to ``serve_tries``
    masked samples that passes the gates; the first-try rate is reported beside it."""
    serve_repair: bool = False  #: wall up sealed empty floor pockets, as the served student does
    min_validity: float = 0.5  #: validity rate (as served when ``serve_tries`` > 1)
    min_validity_lower95: float = 0.3  #: Wilson 95 % lower bound of validity
    min_control_joint: float = 0.3  #: every spec field honoured at once
    min_diversity_ratio: float = 0.5  #: student diversity / teacher diversity
    min_novelty: float = 0.0
    min_agreement: float | None = 0.90
    """Held-out whole-answer agreement with the teacher (sites judged by agreement, see
    ``[judge]`` in forge.toml); below it the version is registered but not promoted."""
    max_latency_p50_ms: float | None = None
    not_worse_margin: float = 0.02  #: may trail the version it replaces by this much (noise)
    likeness: bool = True  #: level site: measure likeness to the teacher beside the controls (trainer.likeness)
    likeness_controls: tuple[str, ...] = ()
    """Controls the student must beat to be promoted: ``untrained`` (random weights), ``uniform``
    (all-equal logits), ``count`` (left+up Markov model); each through the same decoding.  Empty: reported only."""
    likeness_margin: float = 0.1
    """Pattern JSD and mean structure W1 must be at most ``(1 - margin)`` times each control's."""
    nll_margin: float = 0.01  #: held-out NLL (nats per interior tile) at least this far below each control's


@dataclass
class ScheduleConfig:
    """When ``--if-needed`` trains (background training between sessions)."""

    min_new_examples: int = 200  #: new valid records since the current version's dataset
    max_load_per_cpu: float = 0.5  #: 1-minute load average per core above which the machine is busy
    nice: int = 10  #: process priority increment for background runs


@dataclass
class PipelineConfig:
    name: str = "custom"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    gates: GateConfig = field(default_factory=GateConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "train": self.train.to_dict()}


# ------------------------------------------------------------------ loading


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value to the annotated type, naming ``where`` on failure."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for alt in (a for a in args if a is not type(None)):
            try:
                return _convert(value, alt, where)
            except PresetError as exc:
                errors.append(str(exc))
        raise PresetError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise PresetError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise PresetError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if dataclasses.is_dataclass(tp) or (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
        if not isinstance(value, dict):
            raise PresetError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise PresetError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise PresetError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise PresetError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise PresetError(f"{where}: expected a string, got {value!r}")
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types are :class:`PresetError`."""
    hints = typing.get_type_hints(cls)
    known = set(cls.__struct_fields__) if issubclass(cls, msgspec.Struct) else {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PresetError(
            f"{where or cls.__name__}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise PresetError(f"override {key}: {p} is not a section")
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) or a dotted-key mapping."""
    if not overrides:
        return data
    items = overrides.items() if isinstance(overrides, dict) else None
    if items is None:
        pairs = []
        for text in overrides:
            key, sep, raw = text.partition("=")
            if not sep or not key.strip():
                raise PresetError(f"override {text!r}: expected section.key=value, e.g. train.steps=50")
            pairs.append((key.strip(), yaml.safe_load(raw)))
        items = pairs
    for key, value in items:
        _set_dotted(data, key, value)
    return data


def load_preset(
    name_or_path: str | Path = "quick",
    *,
    overrides: list[str] | dict[str, Any] | None = None,
) -> PipelineConfig:
    """Load a preset by name (``tiny-test``, ``quick``, ``standard``) or YAML path, then apply overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise PresetError(f"no preset {str(name_or_path)!r}; known presets: {', '.join(preset_names())} (or a YAML path)")
    from generator.guards.inputs import MAX_CONFIG_BYTES, InputFileError, read_file_text

    try:
        data = yaml.safe_load(read_file_text(path, max_bytes=MAX_CONFIG_BYTES, what="preset")) or {}
    except InputFileError as exc:
        raise PresetError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a mapping of sections at the top level")
    data.setdefault("name", path.stem)
    apply_overrides(data, overrides)
    try:
        return from_dict(PipelineConfig, data)
    except PresetError as exc:
        raise PresetError(f"{path.name}: {exc}") from None
