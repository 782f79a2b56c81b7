"""Call-site ids: ``module:qualname#schema-hash`` for every ``by llm()`` function.

A call site is identified by *where* the function lives and *what shape* its
output has, never by prompt text (a function-level semstring can replace the
function's name in the prompt).  Changing the return type of a ``by llm()``
function therefore starts a new call site, so a student trained on the old
shape is never routed to the new one.

>>> site_id("jac.levels", "design_level", {"type": "object"})
'jac.levels:design_level#a2c79926'
>>> split_site("jac.levels:design_level#a2c79926")
('jac.levels', 'design_level', 'a2c79926')
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

HASH_LEN: Final = 8


def schema_hash(output_schema: dict[str, Any] | None) -> str:
    """First 8 hex digits of the SHA-256 of the schema as canonical JSON.

    Canonical means sorted keys, no whitespace and UTF-8, so the same schema
    hashes the same on every machine and Python version.  ``None`` (a function
    that returns ``str`` or nothing typed) hashes as JSON ``null``.
    """
    text = json.dumps(output_schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LEN]


def site_id(module: str, qualname: str, output_schema: dict[str, Any] | None) -> str:
    """The call-site id ``module:qualname#hash8`` of a ``by llm()`` function."""
    return f"{module}:{qualname}#{schema_hash(output_schema)}"


def split_site(site: str) -> tuple[str, str, str]:
    """Split a call-site id into ``(module, qualname, hash8)``.

    Raises ``ValueError`` naming the id when it is not ``module:qualname#hash``.
    """
    head, sep, digest = site.rpartition("#")
    module, colon, qualname = head.partition(":")
    if not sep or not colon or not module or not qualname or not digest:
        raise ValueError(f"call-site id {site!r} is not of the form 'module:qualname#hash8'")
    return module, qualname, digest


def site_name(site: str) -> str:
    """The readable part of a site id, without the hash (``module:qualname``)."""
    return site.rpartition("#")[0] or site


#: ``design_level`` in ``jac/levels.jac`` (a test proves the plugin computes the same id).
LEVEL_SITE: Final = "jac.levels:design_level#fa462d2e"
#: ``choose_next_spec`` in ``jac/levels.jac``.
SPEC_SITE: Final = "jac.levels:choose_next_spec#562e5219"
