"""The generator's store: SQLite by default, PostgreSQL by URL (versioned migrations); see docs/store.md.

Besides the database (``db``, ``schema``, ``dialect``, ``transfer``), this
package holds the leaves every writer and reader of the store shares:
``records`` (the wire type of one generation call), ``callsite`` (the
call-site id rows are keyed by) and ``redact`` (the one redactor).  They
live here, not in ``generator.capture``, because capture imports the store:
a wire type of the store inside capture would close an import cycle
(``tests/test_layers.py``).

>>> from generator.store import Store  # Store.open() uses forge.db in the data dir
"""

from __future__ import annotations

from generator.store.db import (
    LOCAL_BACKENDS,
    Rating,
    SiteEvent,
    SiteState,
    SiteStats,
    Store,
    StoredCall,
    StoredEvent,
)
from generator.store.dialect import StoreUnreachable, configured_url
from generator.store.schema import SCHEMA_VERSION

__all__ = [
    "LOCAL_BACKENDS",
    "SCHEMA_VERSION",
    "Rating",
    "SiteEvent",
    "SiteState",
    "SiteStats",
    "Store",
    "StoredCall",
    "StoreUnreachable",
    "StoredEvent",
    "configured_url",
]
