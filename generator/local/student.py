"""Local inference: a trained student loaded once, answering one call site.

``torch``/``transformers`` are imported only when a student is loaded, so
importing :mod:`generator` stays light for games that never serve locally.

A model directory (what :func:`trainer.loop.train` writes) holds
``config.json``, ``model.safetensors`` and ``tokenizer.json``; optionally
``student.json`` (or a registry ``manifest.json``) naming the call ``site``
and ``version``.  A student fine-tuned from a pretrained base holds LoRA
adapters instead of weights (``adapter_config.json``,
``adapter_model.safetensors``, ``student_base.json`` naming the base): they
are merged into the base when the student loads.  Weights are read from
safetensors only.  Special ids, the prompt layout (the base's chat template)
and the text of each token come from the folder's own files
(:class:`~generator.local.prompting.PromptFormat`), never from token names.

Size: just over 400 lines on purpose. Loading (weights, adapters, checks),
generation for both kinds of site and the level backend's
validate-and-resample loop share one loaded model and its lock.

>>> student = LocalStudent.load("models/level/v3", quantize="int8")  # doctest: +SKIP
>>> out = student.generate({"spec": spec_dict}, seed=7)  # doctest: +SKIP
>>> out.result["rows"][0]  # doctest: +SKIP
'################'
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from generator.errors import BackendError, ModelLoadError
from generator.local.codec import (
    LEVEL_FORM,
    ROW_PREFIX_LEN,
    encode_prompt,
    is_level_site,
    spec_from_args,
)

if TYPE_CHECKING:
    from generator.backends.base import BackendOutput, BackendRequest

__all__ = ["LEVEL_TEMPERATURE", "REQUIRED_FILES", "LocalStudent", "StudentBackend", "StudentOutput"]

log = logging.getLogger(__name__)

REQUIRED_FILES: Final = ("config.json", "model.safetensors", "tokenizer.json")
#: What a folder of LoRA adapters holds instead of ``model.safetensors``.
ADAPTER_FILES: Final = ("adapter_config.json", "adapter_model.safetensors", "student_base.json")
_TORCH_HINT: Final = "local students need torch and transformers: pip install 'dungeon-forge[train]'"


#: The temperature level students sample at when they serve (variety); the promotion gates and
#: ``benchmarks.level_student`` judge at the same one (``trainer.config.GateConfig.temperature``).
LEVEL_TEMPERATURE: Final = 1.0

#: Below this many parameters a student runs on one torch thread unless told otherwise.
SMALL_MODEL_PARAMS: Final = 50_000_000


@dataclass
class StudentOutput:
    """One completion: the text, the decoded result (None if it did not decode), and its cost."""

    text: str
    result: dict[str, Any] | None
    mean_logprob: float
    tokens: int
    latency_ms: float
    prompt_tokens: int = 0
    forced_tokens: int = 0
    error: str | None = None  #: why ``result`` is None
    pockets_filled: int = 0  #: sealed empty floor pockets walled up (``repair=True``)
    #: things the grammar let the model write, in order: (glyph, x, y, forced by the must-place rule)
    placements: list[tuple[str, int, int, bool]] = field(default_factory=list)


class LocalStudent:
    """A student model in memory.  Load once with :meth:`load`; :meth:`generate` is thread-safe."""

    def __init__(self, model: Any, tokenizer: Any, *, site: str, model_dir: Path,
                 quantize: str | None = None, version: str | None = None) -> None:
        from generator.local.prompting import PromptFormat, token_texts

        self.model = model
        self.tokenizer = tokenizer
        self.site = site
        self.model_dir = model_dir
        self.quantize = quantize
        self.version = version
        self.format = PromptFormat.from_dir(model_dir, tokenizer)
        self.token_strings = token_texts(tokenizer, byte_level=self.format.byte_level)
        self.bos_id = self.format.bos_id if self.format.add_bos else None
        self.eos_id = self.format.eos_id
        #: tokens a generic answer may take at most (the trainer writes twice the longest teacher answer)
        self.answer_budget = 1024
        self.output_schema: dict[str, Any] | None = None
        self._constraint: Any = None
        if not is_level_site(site):
            self._load_constraint()
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 4096))
        #: level rows padded to this many tiles (``forge_row_stride`` in config.json; None: unpadded)
        stride = getattr(model.config, "forge_row_stride", None)
        self.row_stride = int(stride) if stride else None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: str | Path, *, quantize: str | None = "int8", site: str | None = None,
             threads: int | None = None) -> LocalStudent:
        """Load a model directory; ``quantize="int8"`` applies torch dynamic int8 to every Linear.

        Raises :class:`~generator.errors.ModelLoadError` naming the file that
        is missing or unreadable.

        ``threads`` sets torch's intra-op threads (process-wide).  By default
        a small model (under :data:`SMALL_MODEL_PARAMS` parameters) runs on
        one thread: its matrices are too small to split, and on a busy
        machine a second thread waiting on the first made each level 5-40x
        slower (decision D17).  Larger models keep torch's default.
        """
        model_dir = Path(model_dir)
        adapters = (model_dir / "adapter_config.json").is_file() and not (model_dir / "model.safetensors").is_file()
        for name in (("config.json", "tokenizer.json", *ADAPTER_FILES) if adapters else REQUIRED_FILES):
            if not (model_dir / name).exists():  # present but odd (a FIFO, a device): check_model_dir says so
                raise ModelLoadError(f"student model {model_dir}: {name} is missing; retrain or roll back the site")
        if quantize not in (None, "int8"):
            raise ModelLoadError(f"quantize={quantize!r} is not supported; use 'int8' or None")
        from generator.local.model_check import check_model_dir

        # absurd or mismatched sizes are refused before torch allocates (adapters: the base is checked on merge)
        check_model_dir(model_dir, require_weights=not adapters)
        try:
            import torch
            from tokenizers import Tokenizer
            from transformers import AutoConfig, AutoModelForCausalLM
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ModelLoadError(f"{_TORCH_HINT} ({exc})") from exc
        try:
            config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(f"{model_dir / 'config.json'} is unreadable: {exc}") from exc
        if adapters:
            model = load_adapted(model_dir)
        else:
            _check_safetensors(model_dir / "model.safetensors")
            try:
                model = AutoModelForCausalLM.from_pretrained(
                    str(model_dir), config=config, local_files_only=True, use_safetensors=True, dtype=torch.float32
                )
            except Exception as exc:
                raise ModelLoadError(f"{model_dir / 'model.safetensors'} could not be loaded: {exc}") from exc
        try:
            tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        except Exception as exc:
            raise ModelLoadError(f"{model_dir / 'tokenizer.json'} is unreadable: {exc}") from exc
        model.eval()
        model.config.use_cache = True
        if threads is None and sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS:
            threads = 1
        if threads:
            torch.set_num_threads(threads)
        meta = _read_meta(model_dir)
        if quantize == "int8" and meta.get("int8") is False:
            # the trainer found int8 changing this student's answers (trainer.pipeline._int8_or_fp32)
            log.info("student %s: served in fp32 (int8 changed its held-out answers)", model_dir)
            quantize = None
        if quantize == "int8":
            from generator.local.quantize import quantize_int8

            model = quantize_int8(model)
        site = site or meta.get("site") or LEVEL_FORM
        version = meta.get("version") or model_dir.name
        log.info("student %s loaded from %s (site %s, %s)", version, model_dir, site, quantize or "fp32")
        student = cls(model, tokenizer, site=site, model_dir=model_dir, quantize=quantize, version=version)
        if isinstance(meta.get("max_new_tokens"), int):
            student.answer_budget = int(meta["max_new_tokens"])
        return student

    def _load_constraint(self) -> None:
        """The schema-constrained decoder of a generic site (``output_schema.json`` + llguidance), if both exist."""
        from generator.local.constrain import JsonConstraint, load_schema

        self.output_schema = load_schema(self.model_dir)
        if self.output_schema is None:
            return
        if not JsonConstraint.available():
            log.warning("student %s: llguidance is not installed, so answers are not constrained to the output "
                        "schema (pip install 'dungeon-forge[train]')", self.model_dir)
            return
        from generator.local.constrain import ConstraintError

        try:
            special = {i for i in (self.format.bos_id, self.format.eos_id, self.format.pad_id) if i is not None}
            special |= {int(i) for i in self.tokenizer.get_added_tokens_decoder()}
            special |= {i for i, t in enumerate(self.token_strings) if t in ("<pad>", "<s>", "</s>", "<unk>")}
            constraint = JsonConstraint(self.tokenizer, vocab_size=int(self.model.config.vocab_size),
                                        eos_id=self.eos_id, token_strings=self.token_strings, special_ids=special)
            constraint.grammar(self.output_schema)  # compile once, now
        except ConstraintError as exc:  # serve unconstrained (answers are still validated) rather than not at all
            log.warning("student %s: answers are not constrained to the output schema: %s", self.model_dir, exc)
            return
        self._constraint = constraint

    @property
    def constrained(self) -> bool:
        """Whether this student's answers are masked to its site's output schema."""
        return self._constraint is not None

    # -- generation ------------------------------------------------------

    def generate(self, args: dict[str, Any], *, seed: int = 0, max_new_tokens: int | None = None,
                 temperature: float | None = None, masked: bool = True, repair: bool = False) -> StudentOutput:
        """Complete the prompt for ``args`` and decode the result.

        For the level site, ``masked=True`` (the default) constrains decoding
        with :class:`~generator.local.decoding.LevelGrammar`; for any other
        site with an ``output_schema.json``, with its JSON schema
        (:mod:`generator.local.constrain`).  ``temperature`` None: sampled
        (1.0) for levels, greedy for other sites.  A result that
        does not decode gives ``result=None`` and the reason in ``error``.
        ``repair=True`` walls up sealed, empty floor pockets of a level
        (:func:`~generator.local.decoding.fill_unreachable_pockets`).
        """
        from generator.local.decoding import LevelGrammar, decode_level_output, sample

        started = time.perf_counter()
        level = is_level_site(self.site)
        if temperature is None:  # levels are sampled (variety); any other site answers its most likely answer
            temperature = LEVEL_TEMPERATURE if level else 0.0
        prompt_ids = self.format.prompt_ids(self.tokenizer, encode_prompt(self.site, args))
        grammar = None
        if level:
            spec = spec_from_args(args)
            budget = spec["height"] * (ROW_PREFIX_LEN + max(spec["width"], self.row_stride or 0) + 1) + 1
            grammar = LevelGrammar(spec, row_stride=self.row_stride) if masked else None
        else:
            budget = self.answer_budget
        budget = min(max_new_tokens or budget, self.max_positions - len(prompt_ids))
        if budget <= 0:
            raise BackendError(f"prompt of {len(prompt_ids)} tokens leaves no room in the model's context")
        matcher = None
        if not level and masked and self._constraint is not None:
            matcher = self._constraint.matcher(self.output_schema)
        with self._lock:
            out = sample(self.model, prompt_ids, token_strings=self.token_strings, eos_id=self.eos_id,
                         seed=seed, max_new_tokens=budget, temperature=temperature, grammar=grammar,
                         stop=None if level else "\n", constraint=matcher)
        if self.format.byte_level:  # pieces can split a multi-byte character: decode the ids as a whole
            out.text = self.format.decode(self.tokenizer, out.token_ids)
        result, error, filled = decode_level_output(self.site, out.text, args, repair=repair)
        return StudentOutput(
            text=out.text,
            result=result,
            pockets_filled=filled,
            mean_logprob=out.mean_logprob,
            tokens=len(out.token_ids),
            latency_ms=(time.perf_counter() - started) * 1000.0,
            prompt_tokens=len(prompt_ids),
            forced_tokens=out.forced_tokens,
            error=error,
            placements=out.placements,
        )

    def generate_levels(self, args: dict[str, Any], n: int, *, seed: int = 0,
                        temperature: float = 1.0, repair: bool = False) -> list[StudentOutput]:
        """``n`` masked level samples for one spec, decoded in one batch (level site only).

        Each output's ``latency_ms`` is the whole batch's time: they arrive together.
        """
        from generator.local.decoding import decode_level_output, sample_levels

        if not is_level_site(self.site):
            raise BackendError(f"generate_levels serves the level site, not {self.site}")
        started = time.perf_counter()
        spec = spec_from_args(args)
        prompt_ids = self.format.prompt_ids(self.tokenizer, encode_prompt(self.site, args))
        with self._lock:
            samples = sample_levels(self.model, prompt_ids, spec, n, token_strings=self.token_strings,
                                    eos_id=self.eos_id, seed=seed, temperature=temperature,
                                    row_stride=self.row_stride)
        latency = (time.perf_counter() - started) * 1000.0
        outputs = []
        for smp in samples:
            result, error, filled = decode_level_output(self.site, smp.text, args, repair=repair)
            outputs.append(StudentOutput(text=smp.text, result=result, pockets_filled=filled,
                                         mean_logprob=smp.mean_logprob,
                                         tokens=len(smp.token_ids), latency_ms=latency,
                                         prompt_tokens=len(prompt_ids), forced_tokens=smp.forced_tokens,
                                         error=error, placements=smp.placements))
        return outputs

    def __repr__(self) -> str:
        return f"LocalStudent(site={self.site!r}, version={self.version!r}, quantize={self.quantize!r})"


class StudentBackend:
    """The level site served by a local student, as a facade :class:`~generator.backends.Backend`.

    The model loads once, here.  Each request samples ``batch`` levels at
    once with the grammar mask and returns the first the validator accepts;
    if none does, it samples another batch, judging ``max_tries`` candidates
    in all (fewer if the request's deadline passes).  With ``repair`` (the
    default) sealed floor pockets holding nothing are walled up first: the
    commonest failure of a small student, and harmless to fix.
    ``confidence`` is the mean log-probability of the sampled tokens.
    """

    name = "student"

    def __init__(self, model_dir: str | Path, quantize: str | None = "int8", *, max_tries: int = 8,
                 batch: int = 4, temperature: float = LEVEL_TEMPERATURE, site: str | None = None,
                 repair: bool = True, validate: Any = None) -> None:
        self.student = LocalStudent.load(model_dir, quantize=quantize, site=site or LEVEL_FORM)
        self.model_version = self.student.version
        self.max_tries = max_tries  #: candidates judged per request, at most
        self.batch = max(1, batch)  #: candidates sampled together (one batch costs ~1.3x one sample)
        self.temperature = temperature
        self.repair = repair  #: wall up sealed empty floor pockets before validating
        self.validate = validate  # None: generator.validation.validate_level

    def generate(self, request: BackendRequest) -> BackendOutput:
        from generator.backends.base import BackendOutput
        from generator.local.decoding import generate_valid_level

        spec_dict = request.spec.to_dict()
        args = {"spec": spec_dict}
        try:
            tried = generate_valid_level(
                self._sampler(args),
                request.spec,
                seed=request.sampling_seed(),
                max_tries=self.max_tries,
                deadline=request.deadline,
                validate=self.validate,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"student {self.model_version} failed on spec {spec_dict}: {exc}") from exc
        out: StudentOutput = tried.output
        level = getattr(tried.report, "level", None) if tried.valid else None
        raw = json.dumps(out.result, separators=(",", ":")) if out.result is not None else out.text
        return BackendOutput(
            raw=raw,
            model="student",
            model_version=self.model_version,
            prompt_tokens=out.prompt_tokens,
            completion_tokens=out.tokens,
            confidence=out.mean_logprob,
            level=level,
        )

    def _sampler(self, args: dict[str, Any]) -> Any:
        if self.batch == 1:
            return lambda s: self.student.generate(args, seed=s, temperature=self.temperature, repair=self.repair)
        return lambda s: self.student.generate_levels(args, self.batch, seed=s, temperature=self.temperature,
                                                      repair=self.repair)

    def __repr__(self) -> str:
        return f"StudentBackend({self.student.model_dir}, quantize={self.student.quantize!r})"


# ------------------------------------------------------------------ helpers


def _base_of(model_dir: Path) -> Path:
    """The base folder a folder of adapters belongs to (``student_base.json``), never downloaded."""
    ref = json.loads((model_dir / "student_base.json").read_text())
    base = str(ref.get("base") or "")
    from generator.local.bases import ensure_base, find_base_dir, is_wheel_base

    if is_wheel_base(base):
        found = find_base_dir(base, near=model_dir)
        return found if found is not None else ensure_base(base)
    path = Path(base)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{model_dir}: its base {base!r} is not on this machine; restore it or retrain")
    return path


def load_adapted(model_dir: str | Path, *, dtype: Any = None) -> Any:
    """The base named by ``student_base.json`` with the LoRA adapters in ``model_dir`` merged in (a plain model)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model_dir = Path(model_dir)
    try:
        base_dir = _base_of(model_dir)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model_dir / 'student_base.json'} is unreadable: {exc}") from exc
    except Exception as exc:  # BaseModelMissing and friends: say which base is missing
        if isinstance(exc, ModelLoadError):
            raise
        raise ModelLoadError(str(exc)) from exc
    _check_safetensors(model_dir / "adapter_model.safetensors")
    from generator.local.model_check import check_model_dir

    check_model_dir(base_dir)
    try:
        base = AutoModelForCausalLM.from_pretrained(str(base_dir), local_files_only=True, use_safetensors=True,
                                                    dtype=dtype or torch.float32)
        return PeftModel.from_pretrained(base, str(model_dir), local_files_only=True).merge_and_unload()
    except Exception as exc:
        raise ModelLoadError(f"adapters in {model_dir} could not be merged into {base_dir}: {exc}") from exc


def _check_safetensors(path: Path) -> None:
    """Read the safetensors header and every tensor once, so corruption is reported by name."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                f.get_slice(key)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable safetensors file ({exc}); retrain or roll back") from exc


def _read_meta(model_dir: Path) -> dict[str, Any]:
    for name in ("student.json", "manifest.json"):
        path = model_dir / name
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError as exc:
                raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc
            if isinstance(data, dict):
                return {k: data.get(k) for k in ("site", "version", "max_new_tokens", "int8")}
    return {}
