"""Routing for the non-level call sites of any Jac program: the local server the capture plugin asks."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from generator.answering import LocalAnswer, Shadow, StudentUnavailable, set_local_server
from generator.routing.policy import RouteState, RoutingPolicy
from generator.routing.router import Router
from generator.routing.state_machine import SiteStatus

log = logging.getLogger(__name__)


LocalAnswerer = Callable[[dict[str, Any]], Any]
"""``args -> result | LocalAnswer | None``: a student answering one (non-level) call site."""
LocalFactory = Callable[[str, Path, str], LocalAnswerer]


def _default_local_factory(site: str, model_dir: Path, version: str) -> LocalAnswerer:
    from generator.local.student import LocalStudent

    student = LocalStudent.load(model_dir, quantize="int8", site=site)
    counter = iter(range(1 << 62))

    def answer(args: dict[str, Any]) -> Any:
        out = student.generate(args, seed=next(counter))  # result None: no usable answer, recorded as such
        return LocalAnswer(result=out.result, raw=out.text, confidence=out.mean_logprob,
                           model="student", model_version=version)

    return answer


class SiteServer:
    """The capture plugin's local server for the non-level call sites of any Jac program.

    Called as ``server(site, args)`` before the model: a site the router has in
    state ``local`` is answered by its student.  ``shadow_for(site)`` tells the
    plugin, after the model answered, which student to run beside it in the
    background for a site in state ``shadow``.  The level site is left to the
    facade, which routes, shadows and spot-checks it itself.  A student that
    cannot be loaded is remembered and declined from then on, so a broken model
    costs one failed load per process, not one per call.
    """

    def __init__(self, router: Router, factory: LocalFactory | None = None) -> None:
        self.router = router
        self.model_name = "student"
        #: read by the capture plugin: its shadow backlog and its bounded wait for shadow answers at exit
        self.shadow_backlog = router.policy.shadow_backlog
        self.shadow_exit_wait_s = router.policy.shadow_exit_wait_s
        #: read by the capture plugin: the share of locally served calls it also asks the model, in the background
        self.spot_check_rate = router.policy.spot_check_rate
        #: ``(site, version) -> seconds`` each student took to load in this session
        self.load_seconds: dict[tuple[str, str], float] = {}
        self._make = factory or _default_local_factory
        self._loaded: dict[tuple[str, str], LocalAnswerer] = {}
        self._broken: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}  #: one per model: a slow load blocks no other site

    def __call__(self, site: str, args: dict[str, Any]) -> Any:
        status = self._status(site, RouteState.LOCAL)
        if status is None:
            return None
        version = status.version or ""
        answerer = self._answerer(site, version)
        if answerer is None:
            return None
        try:
            answer = answerer(args)
        except Exception as exc:  # noqa: BLE001 - a failed attempt: recorded, and the model answers
            log.warning("site %s: student %s failed (%s: %s); the model answers", site, version, type(exc).__name__, exc)
            answer = None
        return _stamp(answer, version)

    def shadow_for(self, site: str) -> Any:
        """A :class:`~generator.answering.Shadow` for a site in state ``shadow``, else None (cheap: one store read)."""
        status = self._status(site, RouteState.SHADOW)
        if status is None:
            return None
        version = status.version or ""

        def answer(args: dict[str, Any]) -> Any:
            answerer = self._answerer(site, version)
            if answerer is None:  # recorded as a skipped call, not as a wrong answer
                raise StudentUnavailable(f"site {site}: student {version} could not be loaded")
            return answerer(args)

        return Shadow(answer=answer, model_version=version)

    def preload(self, background: Callable[[Callable[[], Any]], bool] | None = None) -> None:
        """Load the students this session routes to, at its start rather than at their first call.

        Students of sites in state ``local`` load now (the program's first call
        there needs them anyway); those of sites in state ``shadow`` load on
        ``background`` (the plugin's shadow worker, so the answers queued behind
        the load find it ready), or now without one.  Each load's time is logged
        (``INFO``, shown by ``jac run``) and kept in :attr:`load_seconds`.
        """
        from generator.store.callsite import LEVEL_SITE

        for site in self.router.sites():
            if site == LEVEL_SITE:
                continue
            status = self.router.status(site)
            if not status.version or status.state not in (RouteState.LOCAL, RouteState.SHADOW):
                continue
            load = functools.partial(self._answerer, site, status.version)
            if status.state is RouteState.SHADOW and background is not None:
                if background(load):
                    continue
            load()

    def _status(self, site: str, wanted: RouteState) -> SiteStatus | None:
        from generator.store.callsite import LEVEL_SITE

        if site == LEVEL_SITE:
            return None
        status = self.router.status(site)
        return status if status.state is wanted and status.version else None

    def _answerer(self, site: str, version: str) -> LocalAnswerer | None:
        key = (site, version)
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            if key in self._broken:
                return None
            if key not in self._loaded:
                started = time.perf_counter()
                try:
                    model_dir = Path(self.router.registry.model_dir(site, version))
                    self._loaded[key] = _load_even_at_exit(self._make, site, model_dir, version)
                except Exception:  # noqa: BLE001 - a broken model means the model answers, as before
                    log.exception("site %s: cannot load student %s; the model keeps answering", site, version)
                    self._broken.add(key)
                    return None
                seconds = time.perf_counter() - started
                self.load_seconds[key] = seconds
                log.info("site %s: student %s loaded in %.2f s", site, version, seconds)
            return self._loaded[key]


def _interpreter_exiting() -> bool:
    """True once the interpreter has begun to exit (``threading``'s exit hooks are running)."""
    return bool(getattr(threading, "_SHUTTING_DOWN", False))


def _load_even_at_exit(make: LocalFactory, site: str, model_dir: Path, version: str) -> LocalAnswerer:
    """``make(site, model_dir, version)``, also while the program is exiting.

    From Python 3.12 no thread can be started once the interpreter exits, and
    transformers loads weights on a thread pool by default, so a student whose
    load was still running (or had not begun) when a short program ended
    failed with "can't create new thread at interpreter shutdown".  At exit
    the load runs single-threaded (``HF_DEACTIVATE_ASYNC_LOAD``; the program
    has finished, nothing else loads), and a load that the exit interrupted is
    tried once more that way.
    """
    import os

    if _interpreter_exiting():
        os.environ["HF_DEACTIVATE_ASYNC_LOAD"] = "1"
    try:
        return make(site, model_dir, version)
    except Exception:
        if not _interpreter_exiting() or os.environ.get("HF_DEACTIVATE_ASYNC_LOAD") == "1":
            raise
        log.info("site %s: the program exited while student %s loaded; loading it single-threaded", site, version)
        os.environ["HF_DEACTIVATE_ASYNC_LOAD"] = "1"
        return make(site, model_dir, version)


def _stamp(answer: Any, version: str) -> Any:
    """Give a bare answer (None included: the student had none) the serving version,
    so the router's live evidence counts it, usable or not."""
    if isinstance(answer, LocalAnswer):
        return answer if answer.model_version else replace(answer, model_version=version)
    if answer is not None and hasattr(answer, "result"):
        return answer
    return LocalAnswer(result=answer, model="student", model_version=version)


def install_local_server(router: Router, *, factory: LocalFactory | None = None) -> SiteServer:
    """Let promoted students answer ``by llm()`` calls of *any* Jac program.

    Registers a :class:`SiteServer` with the capture plugin: for a call site the
    router has in state ``local`` (levels excluded: the facade serves those), the
    site's student answers; the plugin checks the answer against the function's
    return type and otherwise calls the model as usual.  For a site in state
    ``shadow`` the plugin runs the student in the background after the model
    answered and records it unserved, which is the evidence that moves the site
    to ``local``.  Returns the server.
    """
    server = SiteServer(router, factory)
    set_local_server(server)
    return server


def start_foreign_session(
    store: Any, data_dir: str | Path | None = None, *, factory: LocalFactory | None = None
) -> tuple[Router, SiteServer] | None:
    """One program run is one session for the non-level call sites of any Jac program.

    Builds a router over ``store`` and the data dir's model registry, applies the
    state machine once (``Router.refresh`` for every site but the level site,
    whose sessions the facade owns) and installs the :class:`SiteServer`.
    Returns None, installing nothing, when no non-level site has a model or a
    routing state, so a data dir without models costs a directory listing.
    """
    from generator.store.callsite import LEVEL_SITE
    from generator.local.registry import Registry

    registry = Registry.in_data_dir(data_dir)
    from generator.evaluate.agreement import JudgeConfig

    router = Router(store, registry, policy=RoutingPolicy.from_data_dir(data_dir), judges=JudgeConfig.load(data_dir))
    sites = [s for s in router.sites() if s != LEVEL_SITE]
    if not sites:
        return None
    router.refresh(sites)  # each change is logged and stored as a site event
    return router, install_local_server(router, factory=factory)
