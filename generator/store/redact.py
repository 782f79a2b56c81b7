"""Keep API keys out of everything the project writes: the store, pending files, logs, errors.

The project's one redactor.  Keys are only ever read from the environment, so
the values of the provider key variables (:data:`KEY_VARIABLES`) and of any
other key-like variable are the secrets to look for; a few common key shapes
are masked as well in case a key reached a prompt or an error text some
other way.
"""

from __future__ import annotations

import os
import re
from typing import Final

REDACTED: Final = "[redacted]"

#: The providers' API-key variables (the one list: the teacher's settings and the redactor both use it).
KEY_VARIABLES: Final = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
    "DEEPSEEK_API_KEY",
    "AZURE_API_KEY",
)

_KEY_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD)$|^(OPENAI|ANTHROPIC|GEMINI|GOOGLE|AZURE|HF)_.*KEY", re.I)
_KEY_SHAPES = re.compile(
    r"(\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic
    r"|\bAIza[0-9A-Za-z_\-]{30,}"  # Google
    r"|\bhf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]{16,})"
)
_MARKERS: Final = ("sk-", "AIza", "hf_", "earer", "EARER")
_MIN_SECRET_LEN: Final = 8  # shorter values would blank out ordinary words


def secret_values() -> list[str]:
    """Values of the provider key variables and other key-like environment variables, and the password
    in ``FORGE_DB_URL``, longest first."""
    found = {
        value
        for name, value in os.environ.items()
        if len(value) >= _MIN_SECRET_LEN and (name in KEY_VARIABLES or _KEY_NAME.search(name))
    }
    from generator.store.dialect import url_password  # not at the top: dialect is the heavier module

    password = url_password(os.environ.get("FORGE_DB_URL", ""))
    if password and len(password) >= _MIN_SECRET_LEN:
        found.add(password)
    return sorted(found, key=len, reverse=True)


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every known secret value and key-shaped string replaced.

    >>> scrub("auth failed for sk-abcdefghijklmnopqrstuv", secrets=[])
    'auth failed for [redacted]'
    """
    for value in secret_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    # Substring checks are much cheaper than the regex over long level JSON.
    if any(marker in text for marker in _MARKERS):
        return _KEY_SHAPES.sub(REDACTED, text)
    return text
