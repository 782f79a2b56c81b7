"""``python -m games.sample_dungeon``: play in a window, or let bots play headless.

Examples::

    python -m games.sample_dungeon                          # a window
    python -m games.sample_dungeon --screenshot level.png --seed 3
    python -m games.sample_dungeon --headless --bot explorer --sessions 2 --seed 7 --json
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
from typing import Any

from engine.core.bots import BOTS

from games.sample_dungeon.sources import SOURCE_KINDS


def _int_at_least(minimum: int) -> Any:
    """An argparse type: an integer no smaller than ``minimum``.

    Checked while parsing so a bad value ends in argparse's usage line and
    exit status 2, not in a traceback from deep inside the engine (numpy
    refuses negative seeds) or in a run that silently plays nothing.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is too small; it must be {minimum} or more")
        return value

    parse.__name__ = f"integer >= {minimum}"  # what argparse names in its own messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m games.sample_dungeon",
        description="The sample dungeon: play in a window, render a screenshot, or let bots play headless.",
    )
    p.add_argument("--headless", action="store_true", help="no window: bots play and a summary is printed")
    p.add_argument("--bot", choices=sorted(BOTS), default="explorer", help="bot policy for --headless")
    p.add_argument("--sessions", type=_int_at_least(1), default=1, help="play sessions (default 1)")
    p.add_argument("--levels-per-session", type=_int_at_least(1), default=3, help="levels per session (default 3)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed, 0 or more (default 0)")
    p.add_argument("--data-dir", default=None, help="data directory (default $FORGE_HOME or the platform's)")
    p.add_argument("--source", choices=SOURCE_KINDS, default="auto",
                   help="where levels come from (default auto: generator, else procedural, else samples)")
    p.add_argument("--no-retry", action="store_true", help="do not replay a level after dying")
    p.add_argument("--max-turns", type=_int_at_least(1), default=None,
                   help="turn limit per attempt, 1 or more (default from level size)")
    p.add_argument("--screenshot", metavar="FILE", default=None, help="render one level to a PNG and exit")
    p.add_argument("--no-background-train", action="store_true",
                   help="window game: do not start `python -m generator.train --if-needed` between sessions")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    return p


def _call_with_supported(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with the keyword arguments it accepts (the window code owns its signature)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn(*args, **kwargs)
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})


def _window_app() -> Any:
    try:
        from games.sample_dungeon import app
    except ImportError as exc:
        raise SystemExit(
            f"the windowed game is not available ({exc}).\n"
            "Run headless instead: python -m games.sample_dungeon --headless --bot explorer"
        ) from None
    return app


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.headless:
        from games.sample_dungeon.headless import format_summary, run_headless
        from generator.guards.output import json_stdout

        # Libraries (litellm's banners) print on stdout: with --json it carries the one summary object.
        with json_stdout(args.json) as emit:
            summary = run_headless(
                bot=args.bot, sessions=args.sessions, seed=args.seed, levels_per_session=args.levels_per_session,
                data_dir=args.data_dir, source=args.source, retry_after_death=not args.no_retry,
                max_turns=args.max_turns, progress=not args.json,
            )
            if args.json:
                emit(summary)
            else:
                print(format_summary(summary))
        return 0 if not summary["errors"] else 1
    app = _window_app()
    common = {"seed": args.seed, "data_dir": args.data_dir, "source": args.source}
    if args.screenshot:
        if not hasattr(app, "screenshot"):
            raise SystemExit("games.sample_dungeon.app has no screenshot(); update the sample game")
        path = _call_with_supported(app.screenshot, args.screenshot, **common)
        if args.json:
            print(json.dumps({"screenshot": str(path or args.screenshot)}))
        return 0
    if not hasattr(app, "run_window"):
        raise SystemExit("games.sample_dungeon.app has no run_window(); update the sample game")
    _call_with_supported(app.run_window, background_train=not args.no_background_train, **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
