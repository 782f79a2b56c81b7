"""Schema-constrained decoding for generic call sites, with llguidance (docs/decisions.md D29).

A generic site's student writes compact JSON (``generator.local.codec``).
With the site's output schema (the one byllm sent the teacher, saved beside
the student as ``output_schema.json``) every token the schema forbids is
masked, so each answer parses into the return type by construction: enums
hold one of their values, integers are integers, every required field is
there, nothing else is.  Tokens the grammar forces (``{"title":"``) are
fed to the model in one step instead of one forward pass each.

llguidance works on the model's own tokenizer (byte-level BPE included) on
the CPU; ``python -m benchmarks.constrained`` measured it against xgrammar
and outlines-core on the project's schemas (docs/benchmarks.md).

>>> c = JsonConstraint.available()
>>> isinstance(c, bool)
True
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Final

import numpy as np

from generator.errors import ModelLoadError

__all__ = ["SCHEMA_FILE", "ConstraintError", "JsonConstraint", "load_schema"]

log = logging.getLogger(__name__)

#: The site's output schema, saved beside a generic student by the trainer.
SCHEMA_FILE: Final = "output_schema.json"


class ConstraintError(ModelLoadError):
    """A schema the constraint library cannot compile, or a token it refused."""


def load_schema(model_dir: str | Path) -> dict[str, Any] | None:
    """The JSON Schema of the site a student folder serves (byllm's ``response_format`` unwrapped), or None."""
    path = Path(model_dir) / SCHEMA_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc
    from generator.validation.sites import json_schema_of

    return json_schema_of(raw) if isinstance(raw, dict) else None


class JsonConstraint:
    """Compiles schemas for one tokenizer; :meth:`matcher` gives the per-call state."""

    def __init__(self, tokenizer: Any, *, vocab_size: int, eos_id: int, token_strings: list[str] | None = None,
                 special_ids: set[int] | None = None) -> None:
        """``tokenizer`` is a ``tokenizers.Tokenizer``.  llguidance reads byte-level and SentencePiece
        tokenizers itself; for others (the micro students' character vocabulary) it is given each token's
        text (``token_strings``) with the ``special_ids`` that are not text."""
        import llguidance

        self.vocab_size = int(vocab_size)
        self.eos_id = int(eos_id)
        try:
            self._tok = llguidance.LLTokenizer(tokenizer.to_str(), n_vocab=self.vocab_size, eos_token=self.eos_id)
        except Exception as exc:  # noqa: BLE001 - a decoder llguidance does not know: describe the tokens
            if token_strings is None:
                raise ConstraintError(f"llguidance cannot use this tokenizer: {exc}") from exc
            self._tok = llguidance.LLTokenizer(llguidance.TokenizerWrapper(
                _Listed(tokenizer, token_strings, special_ids or set(), self.eos_id, self.vocab_size)))
        self._grammars: dict[str, str] = {}

    @staticmethod
    def available() -> bool:
        """Whether llguidance is installed (part of the ``train`` extra)."""
        return importlib.util.find_spec("llguidance") is not None

    def grammar(self, schema: dict[str, Any]) -> str:
        """The compiled grammar of ``schema`` (compact JSON: no whitespace, as the codec writes it); cached."""
        import llguidance

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
            is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, self._tok)
            if is_error:
                raise ConstraintError(f"llguidance cannot compile the output schema: {'; '.join(messages)}")
            self._grammars[key] = grammar
        return self._grammars[key]

    def matcher(self, schema: dict[str, Any]) -> SchemaMatcher:
        return SchemaMatcher(self, self.grammar(schema))


class _Listed:
    """A tokenizer described by its token texts, in the shape ``llguidance.TokenizerWrapper`` reads."""

    def __init__(self, tok: Any, texts: list[str], special: set[int], eos: int, vocab_size: int) -> None:
        texts = (list(texts) + [""] * vocab_size)[:vocab_size]
        # special tokens are not text: llguidance marks them with a leading 0xFF byte
        self.tokens = [b"\xff" + t.encode() if i in special else t.encode("utf-8") for i, t in enumerate(texts)]
        self.special_token_ids = sorted(special)
        self.eos_token_id, self.bos_token_id = eos, None
        self._tok = tok

    def __call__(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)


class SchemaMatcher:
    """One answer's position in the grammar: which tokens may come next, which are forced."""

    def __init__(self, owner: JsonConstraint, grammar: str) -> None:
        import llguidance
        import llguidance.numpy as lnp

        self._owner = owner
        self._m = llguidance.LLMatcher(owner._tok, grammar)
        if self._m.is_error():
            raise ConstraintError(f"llguidance: {self._m.get_error()}")
        self._bits = lnp.allocate_token_bitmask(1, owner.vocab_size)

    def allowed(self) -> np.ndarray:
        """Boolean mask over the vocabulary of the tokens that may come next (EOS when the answer is complete)."""
        import llguidance.numpy as lnp

        lnp.fill_next_token_bitmask(self._m, self._bits, 0)
        return np.unpackbits(self._bits[0].view(np.uint8), bitorder="little")[: self._owner.vocab_size].astype(bool)

    def forced(self) -> list[int]:
        """Tokens the grammar allows no alternative to from here (possibly none)."""
        return [int(t) for t in self._m.compute_ff_tokens()]

    def advance(self, token: int) -> None:
        if not self._m.consume_token(int(token)):
            raise ConstraintError(f"llguidance refused token {token}: {self._m.get_error()}")

    @property
    def done(self) -> bool:
        """The answer is complete and nothing but EOS may follow."""
        return bool(self._m.is_stopped())
