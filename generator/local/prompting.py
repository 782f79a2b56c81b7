"""How a model folder turns the compact ``args -> result`` form into token ids, taken from the folder itself.

Nothing is guessed from token names.  The special ids come from the model's
``config.json`` (``bos_token_id``, ``eos_token_id``, ``pad_token_id``),
whether a BOS is prepended from ``tokenizer_config.json``'s ``add_bos_token``
(else: yes when there is a BOS id and no chat template, as for the micro
students), and the chat template from ``chat_template.jinja`` or
``tokenizer_config.json``.

Two kinds:

``plain`` (micro students trained from scratch)
    ``[BOS] prompt completion [EOS]``: the compact form as it is.
``chat`` (pretrained instruction-tuned bases such as SmolLM2)
    The compact prompt is the user turn of the base's own chat template,
    after a one-line system turn (:data:`SYSTEM`); the completion is the
    assistant turn, ended by the template's EOS (``<|im_end|>`` for SmolLM2).
    The base has learnt that shape, so a few hundred examples are enough.

Byte-level vocabularies (GPT-2 style: ``Ġ`` for a space, ``Ċ`` for a
newline) and SentencePiece ones (``▁``, ``<0x0A>``) both get per-token text
from :func:`token_texts`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from generator.errors import ModelLoadError

__all__ = ["SYSTEM", "PromptFormat", "byte_decoder", "byte_symbols", "is_byte_level", "token_texts"]

#: The system turn of the chat form: short, because every token of it is paid on every call.
SYSTEM: Final = "Answer with the JSON result."


@lru_cache(maxsize=1)
def byte_symbols() -> dict[int, str]:
    """Each byte -> GPT-2's printable stand-in character (what byte-level vocabularies, llama.cpp's "gpt2"
    included, are written in).  The one copy of this table; do not mutate the cached dict."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in character -> the byte it stands for."""
    return {ch: b for b, ch in byte_symbols().items()}


def is_byte_level(tokenizer_json: dict[str, Any]) -> bool:
    """Whether a ``tokenizer.json`` (parsed) uses GPT-2 byte-level pieces."""
    parts = [tokenizer_json.get("pre_tokenizer") or {}, tokenizer_json.get("decoder") or {}]
    for part in list(parts):
        parts.extend(part.get("pretokenizers", []) or part.get("decoders", []) or [])
    return any(isinstance(p, dict) and p.get("type") == "ByteLevel" for p in parts)


def token_texts(tok: Any, *, byte_level: bool | None = None) -> list[str]:
    """The text each token id stands for, so decoding is a join and masks map to characters.

    Special (added) tokens keep their written form.  Byte-level pieces are
    turned into their bytes and decoded (a piece holding part of a multi-byte
    character gives U+FFFD here; :meth:`PromptFormat.decode` decodes a whole
    sequence exactly).  SentencePiece pieces: ``▁`` is a space, ``<0x0A>`` a byte.
    """
    if byte_level is None:
        byte_level = is_byte_level(json.loads(tok.to_str()))
    vocab = tok.get_vocab()
    special = {t.content for t in tok.get_added_tokens_decoder().values()}
    bd = byte_decoder()
    out = [""] * (max(vocab.values()) + 1)
    for text, i in vocab.items():
        if text in special:
            out[i] = text
        elif byte_level:
            if all(ch in bd for ch in text):
                out[i] = bytes(bd[ch] for ch in text).decode("utf-8", errors="replace")
            else:
                out[i] = text
        elif len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
            out[i] = chr(int(text[3:5], 16))
        else:
            out[i] = text.replace("\u2581", " ")
    return out


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _one_id(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class PromptFormat:
    """Special ids and prompt shape of one model folder (see the module docstring)."""

    bos_id: int | None
    eos_id: int
    pad_id: int
    add_bos: bool
    chat_template: str | None = None
    bos_token: str = ""
    eos_token: str = ""
    byte_level: bool = False

    @property
    def kind(self) -> str:
        return "chat" if self.chat_template else "plain"

    @classmethod
    def from_dir(cls, model_dir: str | Path, tokenizer: Any | None = None) -> PromptFormat:
        """Read the format of ``model_dir`` (``config.json``, ``tokenizer_config.json``, ``tokenizer.json``)."""
        d = Path(model_dir)
        config = _read_json(d / "config.json")
        gen = _read_json(d / "generation_config.json")
        tcfg = _read_json(d / "tokenizer_config.json")
        tok_json = _read_json(d / "tokenizer.json")
        if tokenizer is None and tok_json:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_str(json.dumps(tok_json))

        def token_id(key: str, token_key: str) -> int | None:
            for source in (config, gen):
                found = _one_id(source.get(key))
                if found is not None:
                    return found
            text = tcfg.get(token_key)
            if isinstance(text, dict):
                text = text.get("content")
            if isinstance(text, str) and tokenizer is not None:
                return tokenizer.token_to_id(text)
            return None

        bos, eos, pad = (token_id("bos_token_id", "bos_token"), token_id("eos_token_id", "eos_token"),
                         token_id("pad_token_id", "pad_token"))
        if eos is None:
            raise ModelLoadError(f"{d}: no end-of-sequence id (eos_token_id in config.json or eos_token in "
                                 "tokenizer_config.json); the model cannot say when it is done")
        template = None
        if (d / "chat_template.jinja").is_file():
            template = (d / "chat_template.jinja").read_text(encoding="utf-8")
        elif isinstance(tcfg.get("chat_template"), str):
            template = tcfg["chat_template"]
        add_bos = tcfg.get("add_bos_token")
        if not isinstance(add_bos, bool):
            add_bos = bos is not None and template is None

        def text_of(i: int | None) -> str:
            if i is None or tokenizer is None:
                return ""
            return tokenizer.id_to_token(i) or ""

        return cls(bos_id=bos, eos_id=eos, pad_id=pad if pad is not None else eos, add_bos=bool(add_bos and bos is not None),
                   chat_template=template, bos_token=text_of(bos), eos_token=text_of(eos),
                   byte_level=is_byte_level(tok_json))

    @classmethod
    def plain(cls, *, bos_id: int | None, eos_id: int, pad_id: int) -> PromptFormat:
        return cls(bos_id=bos_id, eos_id=eos_id, pad_id=pad_id, add_bos=bos_id is not None)

    # -------------------------------------------------------------- text

    def render(self, prompt: str) -> str:
        """The text the model sees before its answer (the chat turns, or the compact prompt as is)."""
        if not self.chat_template:
            return prompt
        return _render_template(self.chat_template, prompt, self.bos_token, self.eos_token)

    def prompt_ids(self, tok: Any, prompt: str) -> list[int]:
        ids = tok.encode(self.render(prompt), add_special_tokens=False).ids
        return ([self.bos_id] if self.add_bos and self.bos_id is not None else []) + list(ids)

    def example_ids(self, tok: Any, prompt: str, completion: str) -> tuple[list[int], int]:
        """Token ids of one training pair and how many of them are the prompt (not learnt)."""
        head = self.prompt_ids(tok, prompt)
        return [*head, *tok.encode(completion, add_special_tokens=False).ids, self.eos_id], len(head)

    def decode(self, tok: Any, ids: Sequence[int]) -> str:
        """Exact text of generated ids (multi-byte characters split across byte-level pieces included)."""
        return tok.decode(list(ids), skip_special_tokens=False)


@lru_cache(maxsize=8)
def _compiled(template: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ModelLoadError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template)


def _render_template(template: str, prompt: str, bos_token: str, eos_token: str) -> str:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    try:
        return _compiled(template).render(messages=messages, add_generation_prompt=True,
                                          bos_token=bos_token, eos_token=eos_token)
    except ModelLoadError:
        raise
    except Exception as exc:  # a template that needs something we do not give it
        raise ModelLoadError(f"the base's chat template cannot render a prompt: {exc}") from exc
