"""``jac`` with a stand-in student for the bounty board's call site: ``python jac_stand_in.py right|wrong run PROGRAM``.

Training a student that learns the bounty rule takes minutes, too long for a
test that runs a program several times; this runs the real ``jac`` command
line in this process after swapping the routing package's student loader
for one that loads :class:`bounty_teacher.RuleStudent` (answering the
teacher's rule, or a valid but wrong one).  Everything else is the real
path: the capture plugin from its entry point, the routing session, the
shadow worker, the store, interpreter exit.

The stand-in loads the way transformers does: on a thread pool (single
threaded when ``HF_DEACTIVATE_ASYNC_LOAD=1``) and taking a while
(``STAND_IN_LOAD_S``, default 1.0 s), so a load still running when a short
program ends meets the same interpreter shutdown as a real student.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bounty_teacher  # noqa: E402

RULES = {"right": bounty_teacher.bounty, "wrong": bounty_teacher.wrong_but_valid}


def _factory(rule):  # noqa: ANN001, ANN202
    def load(site: str, model_dir: Path, version: str) -> bounty_teacher.RuleStudent:
        delay = float(os.environ.get("STAND_IN_LOAD_S", "1.0"))
        if os.environ.get("HF_DEACTIVATE_ASYNC_LOAD") == "1":
            time.sleep(delay)
        else:
            with ThreadPoolExecutor(2) as pool:
                pool.submit(time.sleep, delay).result()
        return bounty_teacher.RuleStudent(rule)

    return load


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] not in RULES:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    from generator.routing import foreign

    foreign._default_local_factory = _factory(RULES[sys.argv[1]])
    from jaclang.jac0core.cli_boot import start_cli

    sys.argv = ["jac", *sys.argv[2:]]
    return start_cli()


if __name__ == "__main__":
    sys.exit(main())
