"""``python -m generator.validate FILE``: check a level file (or a JSONL of levels) against gates V0-V7.

Exit status: 0 every level valid, 1 some level invalid, 2 the file (or the
spec) could not be read at all.  ``--json`` prints one JSON object instead
of the human report.  FILE ``-`` reads standard input.

A file holds one Level JSON object (pretty-printed or not), or one level per
line (JSONL: chosen for ``.jsonl``/``.ndjson`` files, or when the first line
is a whole JSON object by itself).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from typing import Any

import msgspec

from engine.core.errors import SpecError
from engine.core.level import LevelSpec

from generator.validation import GATES, ValidationReport, validate_batch, validate_level
from generator.validation.report import DEFAULT_LIMITS

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2
#: Failures that mean "this is not a level file at all" rather than "a broken level".
_UNREADABLE = {"V0.parse", "V0.too_large", "V0.duplicate_key"}
#: JSONL files may be datasets: cap the whole file well above one level's limit.
MAX_FILE_BYTES = 2_000_000_000
MARK = "X"
#: File names that mean one level per line, whatever the first line looks like.
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.validate",
        description="Check levels against the validation gates V0-V7 "
                    "(exit 0 all valid, 1 some invalid, 2 unreadable input).",
        epilog="Gates: " + "; ".join(f"{g} {rule}" for g, rule in GATES.items()),
    )
    p.add_argument("file", help="a Level JSON file, a JSONL file of levels, or '-' for standard input")
    p.add_argument("--spec", help="the LevelSpec to check against, as JSON or @path/to/spec.json")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.add_argument("--jsonl", action="store_true", help="treat the input as one level per line")
    p.add_argument("--no-picture", action="store_true", help="do not draw the map with failures marked")
    p.add_argument("--show", type=int, default=20, metavar="N", help="invalid JSONL lines to list (default 20)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        spec = _read_spec(args.spec) if args.spec else None
    except OSError as exc:
        return _unreadable(args, f"cannot use --spec: {exc.strerror or exc}")
    except (SpecError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        return _unreadable(args, f"cannot use --spec: {_short(exc)}")
    try:
        data = _read_input(args.file, jsonl=args.jsonl or args.file.endswith(JSONL_SUFFIXES))
    except OSError as exc:
        return _unreadable(args, f"cannot read {args.file}: {exc.strerror or exc}")
    except ValueError as exc:
        return _unreadable(args, str(exc))
    if args.jsonl or _looks_like_jsonl(args.file, data):
        return _run_jsonl(args, data, spec)
    return _run_single(args, data, spec)


#: A spec is a small JSON object; a bigger --spec file is refused unread.
MAX_SPEC_BYTES = 64_000


def _read_spec(text: str) -> LevelSpec:
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise ValueError(f"{path} is not a regular file")
        with path.open("rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            raise ValueError(f"{path} is over {MAX_SPEC_BYTES:,} bytes; a spec is one small JSON object")
        text = raw.decode("utf-8")
    return LevelSpec.from_json(text)


def _short(exc: Exception) -> str:
    """A one-line reason: a UnicodeDecodeError's text repeats the whole offending input otherwise."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r})"
    return str(exc)


def _read_input(name: str, *, jsonl: bool = False) -> bytes:
    """The input's bytes, read no further than it can be used.

    A single level over the per-level limit is read only up to one byte past
    that limit (the gates then report ``V0.too_large``); only input that is
    JSONL (by flag, by name, or by a first line that is a whole object) is
    read on, up to :data:`MAX_FILE_BYTES`.  Only regular files are opened, so
    a FIFO or a device cannot hang or flood the command.
    """
    if name == "-":
        return _read_bounded(sys.stdin.buffer, jsonl)
    path = Path(name)
    if path.is_dir():
        raise ValueError(f"{name} is a directory; give a level file")
    if path.exists() and not path.is_file():
        raise ValueError(f"{name} is not a regular file (a FIFO or a device?); use '-' to read standard input")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{name} is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}")
    with path.open("rb") as fh:
        return _read_bounded(fh, jsonl)


def _read_bounded(stream: Any, jsonl: bool) -> bytes:
    head = stream.read(DEFAULT_LIMITS.max_bytes + 1)
    if len(head) <= DEFAULT_LIMITS.max_bytes:
        return head  # the whole input
    if not jsonl:
        first = head.split(b"\n", 1)[0]
        jsonl = len(first) < len(head) and _is_object(first)
    if not jsonl:
        return head  # one oversized level: enough to say so
    data = head + stream.read(MAX_FILE_BYTES + 1 - len(head))
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"the input is over {MAX_FILE_BYTES:,} bytes")
    return data


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(msgspec.json.decode(line), dict)
    except (msgspec.DecodeError, RecursionError):
        return False


def _looks_like_jsonl(name: str, data: bytes) -> bool:
    if name.endswith(JSONL_SUFFIXES):
        return True
    lines = [ln for ln in data.splitlines() if ln.strip()]
    if len(lines) < 2 or len(lines[0]) > DEFAULT_LIMITS.max_bytes:
        return False
    return _is_object(lines[0])


def _unreadable(args: argparse.Namespace, message: str) -> int:
    if args.json:
        print(msgspec.json.encode({"valid": False, "error": message, "failures": []}).decode())
    else:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_UNREADABLE


# ------------------------------------------------------------------ one level


def _run_single(args: argparse.Namespace, data: bytes, spec: LevelSpec | None) -> int:
    report = validate_level(data, spec)
    unreadable = bool(report.failures) and all(f.code in _UNREADABLE for f in report.failures)
    status = EXIT_VALID if report.valid else EXIT_UNREADABLE if unreadable else EXIT_INVALID
    if args.json:
        out = report.to_dict()
        out["file"] = args.file
        if report.level is not None:
            out["level"] = {"name": report.level.name, "width": report.level.width, "height": report.level.height,
                            "theme": report.level.theme}
        print(msgspec.json.encode(out).decode())
        return status
    print(describe(report, args.file, picture=not args.no_picture))
    return status


def describe(report: ValidationReport, label: str = "level", *, picture: bool = True) -> str:
    """The human report: verdict, each failure, and the map with failure tiles marked."""
    lvl = report.level
    title = f"{label}: {lvl.name!r} ({lvl.theme}, {lvl.width}x{lvl.height})" if lvl is not None else label
    if report.valid:
        return f"VALID  {title}"
    n = len(report.failures)
    lines = [f"INVALID  {title}: {n} failure{'s' if n != 1 else ''}"]
    for f in report.failures:
        lines.append(f"  {f.code:<24} {f.where:<16} {f.message}")
    if picture and lvl is not None:
        lines.append("")
        lines.append(f"map ({MARK} marks a failure; @ spawn, > exit):")
        lines.extend("  " + row for row in mark_picture(lvl.picture(), report))
    return "\n".join(lines)


def mark_picture(picture: str, report: ValidationReport) -> list[str]:
    """The level picture with every located failure's tile replaced by :data:`MARK`."""
    rows = [list(r) for r in picture.splitlines()]
    for f in report.failures:
        if f.at is not None:
            x, y = f.at
            if 0 <= y < len(rows) and 0 <= x < len(rows[y]):
                rows[y][x] = MARK
    return ["".join(r) for r in rows]


# ------------------------------------------------------------------ JSONL


def _run_jsonl(args: argparse.Namespace, data: bytes, spec: LevelSpec | None) -> int:
    numbered = [(i + 1, ln) for i, ln in enumerate(data.splitlines()) if ln.strip()]
    if not numbered:
        return _unreadable(args, f"{args.file} holds no levels")
    reports = validate_batch([ln for _, ln in numbered], spec)
    bad = [(line, r) for (line, _), r in zip(numbered, reports) if not r.valid]
    gates: collections.Counter[str] = collections.Counter()
    codes: collections.Counter[str] = collections.Counter()
    for _, r in bad:
        gates.update({f.gate for f in r.failures})
        codes.update({f.code for f in r.failures})
    unreadable = len(bad) == len(reports) and all(
        all(f.code in _UNREADABLE for f in r.failures) for _, r in bad)
    status = EXIT_VALID if not bad else EXIT_UNREADABLE if unreadable else EXIT_INVALID
    if args.json:
        out: dict[str, Any] = {
            "valid": not bad,
            "file": args.file,
            "levels": len(reports),
            "valid_levels": len(reports) - len(bad),
            "invalid_levels": len(bad),
            "gates": {g: gates.get(g, 0) for g in GATES},  # levels failing each gate
            "codes": dict(sorted(codes.items())),
            "invalid": [{"line": line, "failures": [f.to_dict() for f in r.failures]} for line, r in bad[: args.show]],
        }
        print(msgspec.json.encode(out).decode())
        return status
    share = 100 * (len(reports) - len(bad)) / len(reports)
    print(f"{args.file}: {len(reports) - len(bad)}/{len(reports)} levels valid ({share:.1f}%)")
    if bad:
        print("levels failing each gate: " + ", ".join(f"{g} {gates[g]}" for g in GATES if gates[g]))
        for line, r in bad[: args.show]:
            first = r.failures[0]
            more = f" (+{len(r.failures) - 1} more)" if len(r.failures) > 1 else ""
            print(f"  line {line}: {first.code} {first.where}: {first.message}{more}")
        if len(bad) > args.show:
            print(f"  ... and {len(bad) - args.show} more invalid lines (--show N to list more)")
    return status


if __name__ == "__main__":
    sys.exit(main())
