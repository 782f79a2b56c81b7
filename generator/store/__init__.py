"""The generator's store: SQLite by default, PostgreSQL by URL (versioned migrations); see docs/store.md.

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
