"""Copy a whole store from one database to another and prove nothing was lost.

:func:`copy_store` moves every row of every table (ids, timestamps and call
order kept) from a source :class:`~generator.store.Store` into an *empty*
destination, in one destination transaction, then compares each table's row
count and checksum on both sides.  The checksum is order-independent (the sum
of a SHA-256 per row, modulo 2^256), so the two databases' sort orders do not
matter; every value is encoded with its type, so ``1`` and ``1.0`` differ.

>>> table_checksum([(1, "a", 0.5)]) == table_checksum([(1, "a", 0.5)])
True
>>> table_checksum([(1, "a", 0.5)]) == table_checksum([(1, "a", 0.50001)])
False
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any, Final

from generator.errors import StoreError
from generator.store.db import Store, _pg_row
from generator.store.dialect import POSTGRES
from generator.store.schema import TABLE_COLUMNS, TABLES

__all__ = ["copy_store", "store_summary", "table_checksum"]

_BATCH: Final = 1_000
_MOD: Final = 1 << 256


def _encode(value: Any) -> bytes:
    if value is None:
        return b"n"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i%d" % value
    if isinstance(value, float):
        return b"f" + value.hex().encode()
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"b" + bytes(value)
    return b"d" + str(value).encode()  # numeric types a server may hand back (e.g. Decimal)


def table_checksum(rows: Iterable[tuple[Any, ...]]) -> str:
    """An order-independent checksum of rows: hex of the sum of each row's SHA-256, modulo 2^256."""
    total = 0
    for row in rows:
        h = hashlib.sha256()
        for value in row:
            enc = _encode(value)
            h.update(len(enc).to_bytes(8, "little"))
            h.update(enc)
        total = (total + int.from_bytes(h.digest(), "big")) % _MOD
    return f"{total:064x}"


def _rows(store: Store, table: str) -> Iterator[tuple[Any, ...]]:
    """Every row of ``table`` (calls in the order they were recorded), in pages."""
    cols = ", ".join(TABLE_COLUMNS[table])
    key = "rowid" if table == "calls" else TABLES[table]
    if key != "id" and table != "calls":  # small tables keyed by text: one read
        yield from store._read(f"SELECT {cols} FROM {table}")
        return
    last = -1
    while True:
        page = store._read(f"SELECT {key}, {cols} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT {_BATCH}", (last,))
        for row in page:
            last = row[0]
            yield tuple(row[1:])
        if len(page) < _BATCH:
            return


def store_summary(store: Store) -> dict[str, dict[str, Any]]:
    """``{table: {"rows": n, "checksum": hex}}`` for every table."""
    out: dict[str, dict[str, Any]] = {}
    for table in TABLES:
        n = 0

        def counted(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
            nonlocal n
            for row in rows:
                n += 1
                yield row

        checksum = table_checksum(counted(_rows(store, table)))
        out[table] = {"rows": n, "checksum": checksum}
    return out


def copy_store(src: Store, dst: Store) -> dict[str, Any]:
    """Copy every table of ``src`` into the empty ``dst``; returns per-table counts, checksums and ``ok``.

    Raises :class:`StoreError` (and writes nothing) when ``dst`` already holds
    rows.  The copy is one transaction on ``dst``: a failure leaves it empty.
    """
    nonempty = {t: n for t in TABLES if (n := int(dst._read(f"SELECT COUNT(*) FROM {t}")[0][0]))}
    if nonempty:
        raise StoreError(
            f"destination store {dst.path} is not empty ({', '.join(f'{t}: {n} rows' for t, n in nonempty.items())}); "
            f"copy into a new database or file so nothing is overwritten"
        )
    with dst._lock:
        conn = dst._connection()
        try:
            with dst._d.transaction(conn):
                for table, cols in TABLE_COLUMNS.items():
                    sql = dst._d.sql(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})")
                    batch: list[tuple[Any, ...]] = []
                    for row in _rows(src, table):
                        batch.append(_pg_row(row) if dst._d is POSTGRES else row)
                        if len(batch) >= _BATCH:
                            dst._d.executemany(conn, sql, batch)
                            batch = []
                    if batch:
                        dst._d.executemany(conn, sql, batch)
                dst._d.reset_sequences(conn)
        except dst._d.errors as exc:
            raise dst._failed("write", exc) from None
    before, after = store_summary(src), store_summary(dst)
    tables = {
        t: {"rows": before[t]["rows"], "copied": after[t]["rows"], "checksum": before[t]["checksum"],
            "same": before[t] == after[t]}
        for t in TABLES
    }
    return {"from": str(src.path), "to": str(dst.path), "ok": all(v["same"] for v in tables.values()),
            "tables": tables}
