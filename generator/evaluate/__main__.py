"""``python -m generator.evaluate``: compare backends on the same specs, write a report, collect ratings.

Examples::

    python -m generator.evaluate --specs specs.jsonl --backends teacher,student --n 2 --report out/
    python -m generator.evaluate --random-specs 20 --backends procedural,student:models/run1 --json
    python -m generator.evaluate --rate --report out/          # rate the levels of that report
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from generator.errors import GeneratorError

log = logging.getLogger("generator.evaluate")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.evaluate",
        description="Run level backends on the same seeded specs and score them on five rubrics "
        "(structural, constraints, fun, diversity, cost); write an HTML report; serve a rating page.",
    )
    src = p.add_argument_group("what to evaluate")
    src.add_argument("--specs", metavar="FILE.jsonl", help="one LevelSpec JSON object per line")
    src.add_argument("--random-specs", type=int, metavar="K", help="instead of --specs: K seeded random specs")
    src.add_argument("--backends", default="teacher,student",
                     help="comma list: teacher, student, student:PATH, procedural, and controls through the "
                          "student's decoding: control:untrained, control:uniform, control:count "
                          "(each may end in :PATH, the student folder it borrows; default: %(default)s)")
    src.add_argument("--student-tries", type=int, default=None, metavar="K",
                     help="candidates a student samples and validates per attempt (default: its own; 1 = raw model)")
    src.add_argument("--student-raw", action="store_true",
                     help="measure the student model alone: one candidate per attempt, no pocket repair")
    src.add_argument("--n", type=int, default=1, help="seeds per spec (default: %(default)s)")
    src.add_argument("--seed", type=int, default=0, help="base seed (default: %(default)s)")
    src.add_argument("--max-attempts", type=int, default=3, help="attempts per level, retries get feedback")
    src.add_argument("--bots", default="all",
                     help="bot policies that play each valid level: all, none or a comma list (default: all)")
    src.add_argument("--max-turns", type=int, default=None, help="turn cap per bot playthrough")
    out = p.add_argument_group("output")
    out.add_argument("--report", metavar="DIR", help="report folder (default: DATA_DIR/reports/evaluate-TIME)")
    out.add_argument("--no-report", action="store_true", help="do not write an HTML report")
    out.add_argument("--pictures", type=int, default=6, help="specs shown as pictures side by side")
    out.add_argument("--json", action="store_true", help="print one JSON object with per-backend rubric scores")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    out.add_argument("--data-dir", metavar="D", help="data directory (default: $FORGE_HOME or the platform's)")
    rate = p.add_argument_group("designer ratings")
    rate.add_argument("--rate", action="store_true",
                      help="serve the rating page on 127.0.0.1 for the levels of --report DIR (after evaluating "
                      "first when --specs/--random-specs are given)")
    rate.add_argument("--port", type=int, default=0, help="rating page port (default: a free one)")
    judge = p.add_argument_group("LLM judge")
    judge.add_argument("--judge", action="store_true",
                       help="also score levels with the Jac LLM judge (needs an API key; skipped otherwise)")
    return p


def _bots(arg: str) -> tuple[str, ...] | None:
    if arg == "all":
        return None
    if arg == "none":
        return ()
    names = tuple(b.strip() for b in arg.split(",") if b.strip())
    from engine.core.bots import BOTS

    unknown = [b for b in names if b not in BOTS]
    if unknown:
        raise GeneratorError(f"--bots: unknown bot(s) {', '.join(unknown)}; choose from {', '.join(BOTS)}, all or none")
    return names


def _label(name: str, names: list[str]) -> str:
    """Short report label: ``student:PATH`` becomes ``student:<folder>`` (the run folder for a run's model)."""
    kind, _, path = name.partition(":")
    if not path:
        return name
    if kind == "control":  # control:KIND[:PATH] -> control:KIND, unless another control of that kind is run
        label = ":".join(name.split(":")[:2])
        clash = any(n != name and ":".join(n.split(":")[:2]) == label for n in names)
        return name if clash else label
    p = Path(path)
    short = p.parent.name if p.name in ("model", "artefact", "checkpoint") and p.parent.name else p.name
    label = f"{kind}:{short[:32]}"
    others = [n for n in names if n != name]
    return name if any(_label(o, []) == label for o in others) else label


def _print_summary(data: dict[str, Any], report: Path | None) -> None:
    backends = data["backends"]
    rubrics = list(dict.fromkeys(r for per in backends.values() for r in per))
    width = max([len(n) for n in backends] + [8])
    print(f"{'backend':<{width}}  " + "  ".join(f"{r:>22}" for r in rubrics))
    for name, per in backends.items():
        cells = []
        for r in rubrics:
            s = per.get(r)
            if s is None or s["score"] is None:
                cells.append(f"{'-':>22}")
                continue
            lo, hi = (v if v is not None else float("nan") for v in s["ci"])
            cells.append(f"{s['score']:>8.3f} [{lo:.3f},{hi:.3f}]".rjust(22))
        print(f"{name:<{width}}  " + "  ".join(cells))
    if report is not None:
        print(f"\nreport: {report}")


def _serve_ratings(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from generator.evaluate.rating import RatingServer, open_store

    with open_store(args.data_dir) as store:
        server = RatingServer(rows, store, port=args.port, seed=args.seed)
        print(f"rating {len(server.rows)} levels at {server.url}  (Ctrl-C to stop)", file=sys.stderr)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from generator.guards.output import json_stdout

    with json_stdout(args.json) as emit:
        try:
            return _run(args, emit)
        except GeneratorError as exc:
            if args.json:
                emit({"error": str(exc), "kind": type(exc).__name__})
            else:
                print(f"error: {exc}", file=sys.stderr)
            return 2


def _run(args: argparse.Namespace, emit: Any = print) -> int:
    from generator.evaluate.report import report_rows, write_report
    from generator.evaluate.runner import (
        EvaluationConfig,
        evaluate,
        generation_rows,
        load_specs,
        random_specs,
        resolve_backend,
        training_levels_from_store,
    )
    from generator.paths import data_dir

    have_specs = bool(args.specs or args.random_specs)
    if args.rate and not have_specs:
        if not args.report or not (Path(args.report) / "levels.jsonl").is_file():
            raise GeneratorError("--rate needs --report DIR of an earlier evaluation (with levels.jsonl), "
                                 "or --specs FILE to evaluate first")
        _serve_ratings(report_rows(args.report), args)
        return 0
    if not have_specs:
        raise GeneratorError("give --specs FILE.jsonl (one spec per line) or --random-specs K")
    if args.n < 1 or args.max_attempts < 1:
        raise GeneratorError("--n and --max-attempts must be at least 1")
    specs = load_specs(args.specs) if args.specs else random_specs(args.random_specs, args.seed)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not names:
        raise GeneratorError("--backends is empty; name at least one of teacher, student, procedural")
    backends = {_label(name, names): resolve_backend(
        name, data_dir=args.data_dir, student_tries=1 if args.student_raw else args.student_tries,
        student_repair=False if args.student_raw else None)
                for name in names}
    config = EvaluationConfig(n=args.n, seed=args.seed, max_attempts=args.max_attempts, bots=_bots(args.bots),
                              max_turns=args.max_turns, progress=not args.quiet)
    training = training_levels_from_store(args.data_dir)
    evaluation = evaluate(specs, backends, config, training_levels=training)
    rows = generation_rows(evaluation)

    agreement = _agreement(rows, args.data_dir)
    judge_agreement = None
    if args.judge:
        from generator.evaluate.judge import judge_available, judge_evaluation

        if judge_available():
            judge_agreement = judge_evaluation(evaluation, rows)
        else:
            print("LLM judge skipped: no API key set", file=sys.stderr)

    report: Path | None = None
    if not args.no_report:
        folder = Path(args.report) if args.report else data_dir(args.data_dir) / "reports" / time.strftime(
            "evaluate-%Y%m%d-%H%M%S")
        report = write_report(evaluation, folder, pictures=args.pictures, rating_agreement=agreement,
                              judge_agreement=judge_agreement, rows=rows)
    data = evaluation.to_dict()
    if agreement:
        data["ratings"] = agreement
    if judge_agreement:
        data["judge"] = judge_agreement
    if report is not None:
        data["report"] = str(report)
    if args.json:
        json.dumps(data, allow_nan=False)  # NaN/inf would not be JSON: fail here, not in the reader
        emit(data)
    else:
        _print_summary(data, report)
    if args.rate:
        _serve_ratings(rows, args)
    return 0


def _agreement(rows: list[dict[str, Any]], data_dir_arg: str | None) -> dict[str, Any] | None:
    """Spearman agreement with stored designer ratings, when any of these levels were rated."""
    from generator.evaluate.rating import open_store, rating_agreement
    from generator.paths import db_path
    from generator.store import configured_url

    if not db_path(data_dir_arg).exists() and configured_url(data_dir_arg) is None:
        return None
    ids = {r["level_id"] for r in rows if r.get("level_id")}
    with open_store(data_dir_arg) as store:
        ratings = [r for r in store.list_ratings() if r.generation_id in ids]
    return rating_agreement(rows, ratings) if ratings else None


if __name__ == "__main__":
    sys.exit(main())
