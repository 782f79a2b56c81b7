"""The routing session of a program run: started at the first ``by llm()`` call, ended at exit.

The plugin asks :func:`generator.routing.start_foreign_session` (routing's
public API) for a local server; routing installs it through
:mod:`generator.answering`, never through this package.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from generator import answering
from generator.capture import sink
from generator.capture import shadow

log = logging.getLogger(__name__)

#: Set to ``0`` to keep the plugin from starting a routing session (no local or shadow answers).
LOCAL_SERVING_ENV = "FORGE_LOCAL_SERVING"

_session_lock = threading.Lock()
_session_home: str | None = None  #: the FORGE_HOME the current session was started for
_session: Any = None  #: (router, server) of the session, when one started


def ensure_session() -> None:
    """Start this process's routing session at its first ``by llm()`` call (one program run = one session).

    When the data dir holds a promoted model for a non-level call site, a
    router over its store and registry applies the state machine once and its
    server is installed (:func:`generator.routing.start_foreign_session`).  A
    data dir without such models costs a directory listing; a local server
    someone else installed is kept; ``FORGE_LOCAL_SERVING=0`` turns this off.
    Never raises.
    """
    global _session_home, _session
    home = os.environ.get("FORGE_HOME", "")
    if home == _session_home:
        return
    with _session_lock:
        if home == _session_home:
            return
        _end_session_locked()
        _session_home = home
        if os.environ.get(LOCAL_SERVING_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
            return
        if answering.get_local_server() is not None:
            return
        try:
            _session = _start_session()
        except Exception:
            log.warning("capture: could not start local serving; the model answers every call", exc_info=True)


def _start_session() -> Any:
    from generator.store.callsite import LEVEL_SITE
    from generator.paths import data_dir
    from generator.local.registry import Registry

    root = data_dir(create=False)
    if not any(site != LEVEL_SITE for site in Registry(root / "models").sites()):
        return None
    store = sink._default_sink.current_store()
    if store is None:
        return None
    from generator.routing import start_foreign_session

    session = start_foreign_session(store, root)
    if session is not None:
        shadow.start_session()
        # Queued shadow answers get their bounded wait before the interpreter stops thread pools.
        shadow.finish_at_exit(end_session)
        preload = getattr(session[1], "preload", None)
        if preload is not None:  # students of local sites load now, of shadowed sites first on the shadow worker
            preload(background=shadow.preload)
    return session


def end_session() -> None:
    """End this process's routing session: remove its local server and close its students.

    The next ``by llm()`` call starts a new session, re-reading the registry
    and applying the state machine again, as a new program run would; a
    long-running program can call this at its own session boundaries.
    """
    with _session_lock:
        _end_session_locked()


def _end_session_locked() -> None:
    global _session_home, _session
    session, _session, _session_home = _session, None, None
    if session is None:
        return
    router, server = session
    if answering.get_local_server() is server:
        answering.set_local_server(None)
    shadow.finish_queued(getattr(server, "shadow_exit_wait_s", None))
    try:
        router.close()
    except Exception:
        log.warning("capture: closing the routing session failed", exc_info=True)


atexit.register(end_session)  # registered after the sink's close: runs first, students close before the store
