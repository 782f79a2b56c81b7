"""``python -m generator.generate``: ask the facade for levels and show them.

    python -m generator.generate --spec '{"width":32,"height":20,"difficulty":4,"enemies":5,"items":3,"theme":"cave"}'
    python -m generator.generate --spec spec.json --backend procedural --n 3 --seed 7 --json

Every level goes through the facade (validated, retried, recorded in the
store of the data dir), so what is printed is what a game would get.  Exit
status: 0 levels served, 2 bad arguments (spec, backend, settings).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from engine.core.errors import SpecError
from engine.core.level import LevelSpec
from generator.errors import GeneratorError

DEFAULT_SPEC = '{"width":32,"height":20,"difficulty":4,"enemies":5,"items":3,"theme":"crypt"}'
BACKEND_CHOICES = ("auto", "procedural", "llm", "student", "remote_student")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.generate",
        description="Generate levels through the facade (validated, with fallback) and print them.",
    )
    p.add_argument("--spec", default=DEFAULT_SPEC,
                   help="LevelSpec as JSON, or @FILE / FILE holding it (a regular file of at most 64 kB; default: a 32x20 crypt)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="auto: the configured cascade (llm when a key/endpoint is set, else procedural); "
                        "others put that backend first (procedural always remains the fallback)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first level (level i uses seed+i)")
    p.add_argument("--n", type=int, default=1, help="how many levels (default 1)")
    p.add_argument("--data-dir", default=None, help="data directory (default: $FORGE_HOME or the platform dir)")
    p.add_argument("--deadline-s", type=float, default=None, help="per-level deadline in seconds")
    p.add_argument("--max-attempts", type=int, default=None, help="attempts per backend")
    p.add_argument("--no-record", action="store_true", help="do not record the calls in the store")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of pictures")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the facade does (stderr)")
    return p


def _read_spec(text: str) -> LevelSpec:
    """``--spec``: JSON, ``@path`` or a path (a regular file of at most 64 kB; see :mod:`generator.guards.inputs`)."""
    from generator.guards.inputs import MAX_SPEC_BYTES, InputFileError, read_file_text

    stripped = text.strip()
    if not stripped.startswith("{"):
        at = stripped.startswith("@")
        path = Path(stripped[1:] if at else stripped)
        if not at and not os.path.lexists(path):
            raise SpecError("<file>", f"--spec is neither JSON nor a readable file ({path}: No such file or directory)")
        try:
            stripped = read_file_text(path, max_bytes=MAX_SPEC_BYTES, what="--spec file")
        except InputFileError as exc:
            raise _InputError(str(exc)) from None
    return LevelSpec.from_json(stripped)


class _InputError(Exception):
    """A --spec file that cannot be used (the message says why)."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.n < 1:
        return _fail("--n must be at least 1", args.json)
    try:
        spec = _read_spec(args.spec)
    except SpecError as exc:
        return _fail(f"bad --spec: {exc}", args.json)
    except _InputError as exc:
        return _fail(str(exc), args.json)

    from generator.guards.output import json_stdout

    # Provider libraries print banners on stdout; with --json stdout carries one object only.
    with json_stdout(args.json) as emit:
        return _serve(args, spec, emit)


def _serve(args: argparse.Namespace, spec: LevelSpec, emit: Any) -> int:
    from generator.facade import LevelGenerator, make_backend

    try:
        from generator.settings import GeneratorConfig

        config = GeneratorConfig.load(args.data_dir, deadline_s=args.deadline_s, max_attempts=args.max_attempts,
                                      record=False if args.no_record else None)
        backends = None if args.backend == "auto" else [make_backend(args.backend, config, data_dir=args.data_dir)]
        gen = LevelGenerator(backends, data_dir=args.data_dir, config=config,
                             store=False if args.no_record else None)
    except GeneratorError as exc:
        return _fail(str(exc), args.json, emit)

    out: list[dict[str, Any]] = []
    with gen:
        for i in range(args.n):
            got = gen.generate(spec, seed=args.seed + i)
            item = {
                "generation_id": got.generation_id,
                "backend": got.backend,
                "model_version": got.model_version,
                "attempts": got.attempts,
                "latency_ms": round(got.latency_ms, 2),
                "seed": got.seed,
                "tried": list(got.tried),
                "level": got.level.to_dict(),
            }
            out.append(item)
            if not args.json:
                print(got.level.picture())
                note = ""
                if args.backend not in ("auto", got.backend):
                    note = f"  ({args.backend} gave no valid level in time; fell back)"
                print(f"{got.level.name}: backend={got.backend} version={got.model_version or '-'} "
                      f"attempts={got.attempts} latency={got.latency_ms:.1f} ms seed={got.seed} "
                      f"id={got.generation_id}{note}\n")
        db = None if gen.store is None else str(gen.store.path)
    if args.json:
        emit({"spec": spec.to_dict(), "backend": args.backend, "store": db, "levels": out})
    elif db:
        print(f"recorded in {db}")
    return 0


def _fail(message: str, as_json: bool, emit: Any = None) -> int:
    if as_json:
        (emit or (lambda obj: print(json.dumps(obj))))({"error": message})
    else:
        print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
