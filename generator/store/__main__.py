"""``python -m generator.store``: see where the store is, and move it between SQLite and PostgreSQL.

    python -m generator.store status                          # backend, schema version, rows per table
    python -m generator.store migrate --to postgresql://forge@db/forge   # this data dir's forge.db -> PostgreSQL
    python -m generator.store export backup.db                # the configured store -> a new SQLite file
    python -m generator.store import old.db                   # a SQLite file -> the configured store

A copy goes into an *empty* destination only, keeps every id, timestamp and
the order of calls, and ends by comparing each table's row count and checksum
on both sides (exit 1 when any differs).  Stop the games writing to the source
first.  The configured store is ``FORGE_DB_URL`` or ``[store] url`` in
forge.toml, else ``forge.db`` in the data dir.  See docs/store.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from generator.errors import GeneratorError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m generator.store", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data directory (default: $FORGE_HOME or the platform data dir)")
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("status", parents=[common], help="backend, location, schema version and rows per table")
    s.add_argument("--url", help="a store URL or SQLite file (default: the configured store)")
    s.add_argument("--checksums", action="store_true", help="also a checksum per table (reads every row)")
    m = sub.add_parser("migrate", parents=[common], help="move this data dir's SQLite store into PostgreSQL")
    m.add_argument("--to", required=True, metavar="URL", help="postgresql://… of an empty database")
    m.add_argument("--from", dest="source", metavar="FILE", help="SQLite file (default: forge.db in the data dir)")
    e = sub.add_parser("export", parents=[common], help="copy the configured store into a new SQLite file")
    e.add_argument("file", help="the SQLite file to create (must not hold data yet)")
    e.add_argument("--from", dest="source", metavar="URL", help="source store (default: the configured store)")
    i = sub.add_parser("import", parents=[common], help="copy a SQLite file into the configured (empty) store")
    i.add_argument("file", help="the SQLite file to read")
    i.add_argument("--to", metavar="URL", help="destination store (default: the configured store)")
    return p


def _open_configured(data_dir: str | None, url: str | None, *, source: bool = False) -> Any:
    from generator.paths import DB_NAME
    from generator.paths import data_dir as resolve
    from generator.store import Store
    from generator.store.dialect import is_postgres_url, sqlite_path_of

    if url and source and not is_postgres_url(url):  # a typo must not read as a new, empty store
        path = sqlite_path_of(url) or Path(url).expanduser()
        if not path.is_file():
            raise GeneratorError(f"{path} does not exist; give an existing SQLite store file or a postgresql:// URL")
    if url:
        return Store.open(url) if "://" in url or url.lower().startswith("sqlite:") else Store.open(
            Path(url), configured=False)
    return Store.open(resolve(data_dir) / DB_NAME)


def _open_file(path: str | Path, *, must_exist: bool) -> Any:
    from generator.store import Store

    p = Path(path).expanduser()
    if must_exist and not p.is_file():
        raise GeneratorError(f"{p} does not exist; give the SQLite store file (forge.db) to read")
    return Store.open(p, configured=False)


def _status(args: argparse.Namespace) -> dict[str, Any]:
    from generator.store.schema import TABLES
    from generator.store.transfer import store_summary

    with _open_configured(args.data_dir, args.url, source=True) as store:
        counts = {t: int(store._read(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in TABLES}
        dropped = sum(int(e.payload.get("dropped_rows", 0)) for e in store.iter_events(type="store_buffer_overflow"))
        out: dict[str, Any] = {"backend": store.backend, "store": str(store.path),
                               "schema_version": store.schema_version, "rows": counts,
                               "buffer_overflow_rows": dropped}
        if args.checksums:
            out["checksums"] = {t: v["checksum"] for t, v in store_summary(store).items()}
    return out


def _copy(src_open: Any, dst_open: Any) -> dict[str, Any]:
    from generator.store.transfer import copy_store

    with src_open() as src, dst_open() as dst:
        return copy_store(src, dst)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "status":
            out = _status(args)
        elif args.command == "migrate":
            from generator.paths import DB_NAME
            from generator.paths import data_dir as resolve
            from generator.store.dialect import is_postgres_url

            if not is_postgres_url(args.to):
                scheme = args.to.split("://")[0] if "://" in args.to else "no scheme"
                raise GeneratorError(f"--to must be a postgresql:// URL, got {scheme!r}")
            source = args.source or resolve(args.data_dir, create=False) / DB_NAME
            out = _copy(lambda: _open_file(source, must_exist=True), lambda: _open_configured(None, args.to))
        elif args.command == "export":
            target = Path(args.file).expanduser()
            out = _copy(lambda: _open_configured(args.data_dir, args.source, source=True),
                        lambda: _open_file(target, must_exist=False))
        else:  # import
            out = _copy(lambda: _open_file(args.file, must_exist=True), lambda: _open_configured(args.data_dir, args.to))
    except GeneratorError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "kind": type(exc).__name__}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    elif args.command == "status":
        print(f"{out['backend']} store {out['store']} (schema version {out['schema_version']})")
        for table, n in out["rows"].items():
            extra = f"  {out['checksums'][table][:16]}" if "checksums" in out else ""
            print(f"  {table:<12} {n:>10}{extra}")
        if out["buffer_overflow_rows"]:
            print(f"  {out['buffer_overflow_rows']} rows were dropped by full outage buffers (store_buffer_overflow events)")
    else:
        print(f"{out['from']} -> {out['to']}")
        for table, t in out["tables"].items():
            print(f"  {table:<12} {t['rows']:>10} -> {t['copied']:<10} {'same checksum' if t['same'] else 'DIFFERENT'}")
        print("copied; every table's rows and checksum match" if out["ok"]
              else "MISMATCH: the destination differs from the source (see above); it was left as written")
    if args.command != "status" and not out["ok"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
