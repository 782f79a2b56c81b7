"""Controls for judging a level student: what the decoding rules give without any learning.

The level grammar (:class:`~generator.local.decoding.LevelGrammar`) and the
post-step (:func:`~generator.local.decoding.decode_level_output`) make every
output the right size, with the right counts, closed, connected and mostly
valid, whatever the logits say.  So "valid" says little about what a student
learned.  These controls go through the *identical* decoding path:

- :func:`untrained_like`: the student's architecture and tokenizer with fresh
  random weights (the initialisation training starts from);
- :func:`uniform_like`: all-equal logits through the same masking (what the
  same model with a zeroed output head, :func:`zero_head_like`, samples);
- :class:`CountStudent`: the left+up Markov count model
  (:class:`generator.evaluate.metrics.TileMarkov`) fitted on the student's training
  levels, sampling through the same masked loop.

:func:`student_nll` scores the teacher's held-out levels under any of them
(nats per interior tile, unmasked): the Markov model's own
:meth:`~generator.evaluate.metrics.TileMarkov.nll` is the baseline a student must beat.

>>> level_char_grid({"spec": {"width": 4, "height": 3, "difficulty": 1, "enemies": 0, "items": 0,
...     "theme": "crypt"}}, {"rows": ["####", "#..#", "####"], "spawn": {"x": 1, "y": 1},
...     "exit": {"x": 2, "y": 1}, "enemies": [], "items": []})
['####', '#@>#', '####']
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from generator.local.codec import LEVEL_FORM, ROW_PREFIX_LEN, encode_completion, encode_prompt, spec_from_args
from generator.local.student import LocalStudent, StudentOutput
from generator.evaluate.metrics import TileMarkov

__all__ = ["CONTROL_NAMES", "CountStudent", "UniformStudent", "level_char_grid", "pooled_nll", "student_nll",
           "student_nll_parts", "uniform_like", "untrained_like", "zero_head_like"]

#: The controls every likeness report carries, in report order.
CONTROL_NAMES: Final = ("untrained", "uniform", "count")
#: Logit given to tokens the count model never emits (they are masked anyway where it matters).
_NEVER: Final = -1e4


def level_char_grid(args: Mapping[str, Any], result: Mapping[str, Any]) -> list[str]:
    """A level as the student writes it: rows of tiles with entities drawn inline (no row prefixes)."""
    text = encode_completion(LEVEL_FORM, dict(args), dict(result))
    return [line[ROW_PREFIX_LEN:] for line in text.split("\n") if line]


# ------------------------------------------------------------ model controls


def untrained_like(student: LocalStudent, *, seed: int = 0) -> LocalStudent:
    """The student's architecture and tokenizer with fresh random weights (seeded), fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(int(seed))
    model = AutoModelForCausalLM.from_config(student.model.config)
    model.eval()
    model.config.use_cache = True
    return LocalStudent(model, student.tokenizer, site=student.site, model_dir=student.model_dir,
                        quantize=None, version="untrained")


def zero_head_like(student: LocalStudent) -> LocalStudent:
    """The student's architecture with a zeroed output head: every logit is 0 at every step."""
    import torch

    out = untrained_like(student)
    with torch.no_grad():
        head = out.model.get_output_embeddings()
        head.weight.zero_()
        if getattr(head, "bias", None) is not None:
            head.bias.zero_()
    out.version = "uniform"
    return out


def uniform_like(student: LocalStudent) -> UniformStudent:
    """All-equal logits through the same masked loop, without running the network.

    It samples exactly what :func:`zero_head_like` samples (the same logits, the
    same seeded generator; a test holds them equal), at the grammar's cost only.
    """
    return UniformStudent(student.token_strings, student.eos_id, site=student.site,
                          row_stride=getattr(student, "row_stride", None))


def student_nll(student: LocalStudent, examples: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> float:
    """Mean negative log-likelihood (nats per interior tile) of ``(args, level)`` pairs under ``student``."""
    return pooled_nll(student_nll_parts(student, examples))


def pooled_nll(parts: Iterable[tuple[float, int]]) -> float:
    """Nats per cell from per-level ``(nats, cells)`` pairs (NaN when there are no cells)."""
    parts = list(parts)
    cells = sum(n for _, n in parts)
    return sum(t for t, _ in parts) / cells if cells else float("nan")


def student_nll_parts(student: LocalStudent,
                      examples: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[tuple[float, int]]:
    """Per level ``(nats, interior cells)`` of ``(args, level)`` pairs under ``student``.

    Unmasked: the model's own softmax over its whole vocabulary, for exactly the
    characters :class:`~generator.evaluate.metrics.TileMarkov` scores (the interior cells,
    entities inline), so the two numbers compare directly.  Needs a
    one-character-per-token tokenizer (the level students' ``char`` kind).
    """
    import torch

    parts: list[tuple[float, int]] = []
    with torch.inference_mode():
        for args, result in examples:
            spec = spec_from_args(dict(args))
            w, h = int(spec["width"]), int(spec["height"])
            prompt = encode_prompt(student.site, dict(args))
            stride = getattr(student, "row_stride", None)
            text = prompt + encode_completion(student.site, dict(args), dict(result), row_stride=stride)
            lead = [student.bos_id] if student.bos_id is not None else []
            ids = lead + student.tokenizer.encode(text, add_special_tokens=False).ids
            if len(ids) != len(lead) + len(text):
                raise ValueError("student_nll needs a one-character-per-token tokenizer (tokenizer: char)")
            if len(ids) > student.max_positions:
                raise ValueError(f"a {w}x{h} level is {len(ids)} tokens, past the model's {student.max_positions}")
            logits = student.model(input_ids=torch.tensor([ids])).logits[0].float()
            logp = torch.log_softmax(logits, dim=-1)
            line = ROW_PREFIX_LEN + max(w, stride or 0) + 1
            ys, xs = np.meshgrid(np.arange(1, h - 1), np.arange(1, w - 1), indexing="ij")
            pos = len(lead) + len(prompt) + ys.ravel() * line + ROW_PREFIX_LEN + xs.ravel()
            target = torch.tensor([ids[p] for p in pos])
            parts.append((-float(logp[torch.as_tensor(pos - 1), target].sum()), int(pos.size)))
    return parts


# ------------------------------------------------------------ count control


class _MaskedControl:
    """A control that writes levels through :func:`~generator.local.decoding.masked_completion`.

    Subclasses give the next-token logits from the text so far (``_logits``);
    the grammar, the sampling and the post-step are the students' own.
    """

    version = "control"

    def __init__(self, token_strings: Sequence[str], eos_id: int, *, site: str = LEVEL_FORM,
                 row_stride: int | None = None) -> None:
        self.token_strings = list(token_strings)
        self.eos_id = eos_id
        self.site = site
        self.row_stride = row_stride  #: the student's row form, so the control writes the same text

    def _logits(self, lines: list[str]) -> np.ndarray:
        raise NotImplementedError

    def generate(self, args: dict[str, Any], *, seed: int = 0, max_new_tokens: int | None = None,
                 temperature: float = 1.0, masked: bool = True, repair: bool = False) -> StudentOutput:
        from generator.local.decoding import LevelGrammar, decode_level_output, masked_completion

        started = time.perf_counter()
        spec = spec_from_args(args)
        budget = max_new_tokens or spec["height"] * (ROW_PREFIX_LEN + max(spec["width"], self.row_stride or 0) + 1) + 1
        lines: list[str] = [""]  # the completion so far, by line (the prompt is not part of it)
        vocab = len(self.token_strings)

        def forward(new_ids: list[int]) -> np.ndarray:
            for i in new_ids:
                for ch in self.token_strings[i] if 0 <= i < vocab else "":
                    if ch == "\n":
                        lines.append("")
                    else:
                        lines[-1] += ch
            return self._logits(lines)

        out = masked_completion(forward, [], token_strings=self.token_strings, eos_id=self.eos_id,
                                rng=np.random.default_rng(int(seed) % 2**64), max_new_tokens=budget,
                                temperature=temperature,
                                grammar=LevelGrammar(spec, row_stride=self.row_stride) if masked else None)
        result, error, filled = decode_level_output(self.site, out.text, args, repair=repair)
        return StudentOutput(text=out.text, result=result, pockets_filled=filled, mean_logprob=out.mean_logprob,
                             tokens=len(out.token_ids), latency_ms=(time.perf_counter() - started) * 1000.0,
                             forced_tokens=out.forced_tokens, error=error, placements=out.placements)


class UniformStudent(_MaskedControl):
    """All-equal logits: the decoding rules alone choose among what they allow, uniformly."""

    version = "uniform"

    def _logits(self, lines: list[str]) -> np.ndarray:
        return np.zeros(len(self.token_strings))

    def nll_parts(self, examples: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[tuple[float, int]]:
        """``log(vocabulary)`` nats for every interior cell (the unmasked uniform distribution)."""
        out = []
        for a, _ in examples:
            spec = spec_from_args(dict(a))
            cells = max(0, int(spec["width"]) - 2) * max(0, int(spec["height"]) - 2)
            out.append((cells * float(np.log(len(self.token_strings))), cells))
        return out


class CountStudent(_MaskedControl):
    """The Markov count baseline as a student: the same masked sampling loop and post-step.

    ``token_strings``/``eos_id`` are the student's vocabulary (so the grammar's
    characters map to the same token ids); the model's next-token logits are
    ``log p(c | left, up)`` for the characters of its alphabet.
    """

    version = "count"

    def __init__(self, markov: TileMarkov, token_strings: Sequence[str], eos_id: int, *, site: str = LEVEL_FORM,
                 row_stride: int | None = None) -> None:
        super().__init__(token_strings, eos_id, site=site, row_stride=row_stride)
        self.markov = markov
        self._ids = np.array([self.token_strings.index(c) if c in self.token_strings else -1
                              for c in markov.alphabet])

    @classmethod
    def fit(cls, levels: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]], like: LocalStudent) -> CountStudent:
        """Fit on ``(args, level)`` training pairs; borrow ``like``'s vocabulary."""
        markov = TileMarkov.fit(level_char_grid(a, r) for a, r in levels)
        return cls(markov, like.token_strings, like.eos_id, site=like.site, row_stride=getattr(like, "row_stride", None))

    def nll_parts(self, examples: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[tuple[float, int]]:
        """Per level ``(nats, interior cells)`` under the Markov model (as :func:`student_nll_parts`)."""
        out = []
        for a, r in examples:
            lp = self.markov.cell_logprobs(level_char_grid(a, r))
            out.append((-float(lp.sum()), int(lp.size)))
        return out

    def _logits(self, lines: list[str]) -> np.ndarray:
        row, col = lines[-1], len(lines[-1]) - ROW_PREFIX_LEN
        left = row[-1] if col > 0 else "#"
        up = lines[-2][ROW_PREFIX_LEN + col] if len(lines) >= 2 and col >= 0 else "#"
        logits = np.full(len(self.token_strings), _NEVER)
        ok = self._ids >= 0
        logits[self._ids[ok]] = self.markov.next_logprobs(left, up)[ok]
        return logits
