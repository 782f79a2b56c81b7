"""Designer ratings: a small local web page to score levels 1-5, and how well automatic scores agree.

``python -m generator.evaluate --rate --report DIR`` serves the levels of an
earlier evaluation (``DIR/levels.jsonl``) on ``127.0.0.1``.  Each level shows
its picture and spec (not which backend made it, so ratings are blind) with
the three rubrics (fun, structure, constraints: 1-5) and a comment.  Ratings
go to the store's ratings table keyed by the level's content id
(:func:`generator.evaluate.rubrics.level_id`), so the same level rated in two
runs is one level.

Endpoints (JSON in and out):

- ``GET /``: the rating page;
- ``GET /api/levels``: levels to rate ``[{level_id, spec, ratings}]``;
- ``GET /levels/<level_id>.png``: the level drawn with the game's tiles;
- ``GET /api/ratings``: every rating stored;
- ``POST /api/ratings`` ``{level_id, fun, structure, constraints, comment?, rater?}``:
  201 ``{"id": ...}``; 400 with ``{"error": ...}`` on bad input; 404 for an unknown level.
"""

from __future__ import annotations

import hmac
import html
import io
import json
import logging
import math
import os
import random
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import numpy as np

from generator.errors import StoreError
from generator.evaluate.rubrics import RATED_RUBRICS
from generator.evaluate.metrics import as_level

__all__ = ["RatingServer", "rating_agreement", "mean_ratings", "open_store", "MAX_BODY"]

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  #: largest POST body accepted (a comment is short)
MAX_COMMENT = 4000
MAX_RATER = 100  #: a name or initials
MAX_LEVEL_ID = 128  #: content ids are 16 hex characters


def open_store(data_dir: str | os.PathLike[str] | None = None) -> Any:
    """The project's store in ``data_dir`` (ratings live in its ``ratings`` table)."""
    from generator.paths import db_path
    from generator.store import Store

    return Store.open(db_path(data_dir))


# ------------------------------------------------------------- agreement


def mean_ratings(ratings: Iterable[Any]) -> dict[str, dict[str, float]]:
    """Mean rating per level and rubric: ``{level_id: {rubric: mean}}`` (store ``Rating`` objects or dicts)."""
    sums: dict[str, dict[str, list[float]]] = {}
    for r in ratings:
        gid = r["generation_id"] if isinstance(r, Mapping) else r.generation_id
        scores = r["scores"] if isinstance(r, Mapping) else r.scores
        per = sums.setdefault(gid, {})
        for rubric, value in scores.items():
            per.setdefault(rubric, []).append(float(value))
    return {gid: {k: float(np.mean(v)) for k, v in per.items()} for gid, per in sums.items()}


def rating_agreement(rows: Sequence[Mapping[str, Any]], ratings: Iterable[Any],
                     rubrics: Sequence[str] = RATED_RUBRICS) -> dict[str, dict[str, Any]]:
    """Spearman rank correlation between automatic per-level scores and people's mean ratings.

    ``rows`` are report rows (``level_id`` and ``scores``); a level counts once
    even if several backends made it.  Fewer than three rated levels, or
    scores that do not vary, give ``rho=None``.

    >>> rows = [{"level_id": str(i), "scores": {"fun": i / 10}} for i in range(4)]
    >>> rated = [{"generation_id": str(i), "scores": {"fun": i + 1}} for i in range(4)]
    >>> rating_agreement(rows, rated, ["fun"])["fun"]["rho"]
    1.0
    """
    from scipy.stats import spearmanr

    people = mean_ratings(ratings)
    auto: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        if row.get("level_id"):
            auto.setdefault(row["level_id"], row.get("scores") or {})
    out: dict[str, dict[str, Any]] = {}
    for rubric in rubrics:
        pairs = [
            (float(auto[gid][rubric]), per[rubric])
            for gid, per in people.items()
            if gid in auto and rubric in per and auto[gid].get(rubric) is not None
            and math.isfinite(float(auto[gid][rubric]))
        ]
        entry: dict[str, Any] = {"rho": None, "p": None, "n": len(pairs)}
        if len(pairs) >= 3:
            a, b = np.array(pairs).T
            if np.ptp(a) > 0 and np.ptp(b) > 0:
                res = spearmanr(a, b)
                entry["rho"], entry["p"] = float(res.statistic), float(res.pvalue)
        out[rubric] = entry
    return out


# ---------------------------------------------------------------- server

_PAGE = """<!doctype html><html lang=en><head><meta charset=utf-8><meta name=csrf-token content="{token}"><title>Rate levels</title><style>
body{{font-family:system-ui,sans-serif;margin:20px auto;max-width:1100px;color:#222;padding:0 12px}}
.card{{display:flex;gap:18px;border:1px solid #ddd;border-radius:6px;padding:12px;margin:12px 0}}
.card img{{image-rendering:pixelated;max-width:520px;border:1px solid #eee}}
.card.done{{background:#f2faf2}} label{{display:block;margin:6px 0}} textarea{{width:100%;height:60px}}
.spec{{color:#555;font-size:.9em}} .status{{color:#2a7a2a;font-weight:600}}
</style></head><body>
<h1>Rate levels</h1>
<p>Score each level 1 (poor) to 5 (great). <b>fun</b>: would it be fun to play?
<b>structure</b>: is it well-formed and sensible to move through? <b>constraints</b>: does it match the spec and
its theme? Backends are hidden. {count} levels.</p>
<div id=levels>{cards}</div>
<script>
async function rate(form) {{
  const data = Object.fromEntries(new FormData(form).entries());
  for (const k of {rubrics}) data[k] = parseInt(data[k], 10);
  const token = document.querySelector('meta[name=csrf-token]').content;
  const res = await fetch('/api/ratings', {{method: 'POST', body: JSON.stringify(data),
                                           headers: {{'Content-Type': 'application/json', 'X-CSRF-Token': token}}}});
  const body = await res.json();
  form.querySelector('.status').textContent = res.ok ? 'saved' : ('error: ' + body.error);
  if (res.ok) form.closest('.card').classList.add('done');
  return false;
}}
</script></body></html>"""


def _card(number: int, row: Mapping[str, Any], rated: int) -> str:
    spec = row.get("spec") or {}
    desc = html.escape(
        f"{spec.get('width')}×{spec.get('height')} {spec.get('theme')} · difficulty {spec.get('difficulty')} · "
        f"{spec.get('enemies')} enemies · {spec.get('items')} items requested"
    )
    gid = html.escape(row["level_id"])
    selects = "".join(
        f"<label>{r} <select name={r}>" + "".join(
            f"<option value={v}{' selected' if v == 3 else ''}>{v}</option>" for v in range(1, 6)
        ) + "</select></label>"
        for r in RATED_RUBRICS
    )
    return (
        f"<div class='card{' done' if rated else ''}'><img src='/levels/{gid}.png' alt='level {number}'>"
        f"<form onsubmit='return rate(this)'><h3>Level {number}</h3><div class=spec>{desc}</div>"
        f"<input type=hidden name=level_id value='{gid}'>{selects}"
        f"<label>comment<textarea name=comment maxlength={MAX_COMMENT}></textarea></label>"
        f"<button type=submit>Save rating</button> <span class=status>{'rated' if rated else ''}</span>"
        f"</form></div>"
    )


class RatingServer:
    """The rating page (Starlette on uvicorn) on ``127.0.0.1``; ``port=0`` picks a free port.

    Only the page itself may post ratings: requests whose ``Host`` is not
    this server's get 400 (a DNS-rebound name cannot reach it), a POST from
    another ``Origin`` (or ``Sec-Fetch-Site``) gets 403, one without the
    page's CSRF token (``X-CSRF-Token``, from the page's
    ``<meta name=csrf-token>``) 403, one that is not ``application/json``
    415.  Bodies are at most :data:`MAX_BODY` bytes and must arrive within
    ``io_timeout_s`` (else 408, connection closed); fields are length-limited.

    >>> # with RatingServer(rows, store) as server: ...  (or server.serve_forever())
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]], store: Any, *, host: str = "127.0.0.1",
                 port: int = 0, seed: int = 0, tile_px: int = 12, io_timeout_s: float = 10.0) -> None:
        from generator.serving.asgi import ASGIServer

        seen: dict[str, Mapping[str, Any]] = {}
        for row in rows:
            if row.get("level_id") and row.get("level") and row["level_id"] not in seen:
                seen[row["level_id"]] = row
        order = list(seen)
        random.Random(seed).shuffle(order)  # blind: backends are mixed
        self.rows = {gid: seen[gid] for gid in order}
        self.store = store
        self.tile_px = tile_px
        self.io_timeout_s = io_timeout_s  #: read per request
        self.csrf_token = secrets.token_urlsafe(32)  #: new every start; the page hands it to its script
        self._pictures: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.http = ASGIServer(_app(self, allowed_hosts=sorted({host, "127.0.0.1", "localhost"})), host, port,
                               name="rating-server")
        self.server_address = self.http.server_address

    @property
    def url(self) -> str:
        return self.http.origin + "/"

    def start(self) -> RatingServer:
        """Serve in a background thread (tests); :meth:`serve_forever` blocks (command line)."""
        self.http.start()
        return self

    def serve_forever(self) -> None:
        self.http.serve_forever()

    def stop(self) -> None:
        self.http.stop()

    def __enter__(self) -> RatingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- content ----------------------------------------------------------

    def _rated_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.store.list_ratings():
            counts[r.generation_id] = counts.get(r.generation_id, 0) + 1
        return counts

    def page(self) -> str:
        counts = self._rated_counts()
        cards = "".join(_card(i + 1, row, counts.get(gid, 0)) for i, (gid, row) in enumerate(self.rows.items()))
        return _PAGE.format(count=len(self.rows), cards=cards, rubrics=json.dumps(list(RATED_RUBRICS)),
                            token=html.escape(self.csrf_token))

    def picture(self, gid: str) -> bytes | None:
        with self._lock:
            if gid in self._pictures:
                return self._pictures[gid]
        row = self.rows.get(gid)
        level = as_level(row["level"]) if row else None
        if level is None:
            return None
        from engine.picture import render_level_image

        buf = io.BytesIO()
        render_level_image(level, tile_px=self.tile_px).save(buf, format="PNG")
        with self._lock:
            self._pictures[gid] = buf.getvalue()
        return buf.getvalue()

    def add_rating(self, body: Mapping[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        gid = body.get("level_id")
        if not isinstance(gid, str) or not gid:
            return HTTPStatus.BAD_REQUEST, {"error": "level_id is missing; send the id shown by GET /api/levels"}
        if len(gid) > MAX_LEVEL_ID:
            return HTTPStatus.BAD_REQUEST, {"error": f"level_id is longer than {MAX_LEVEL_ID} characters"}
        if gid not in self.rows:
            return HTTPStatus.NOT_FOUND, {"error": f"unknown level_id {gid!r}; GET /api/levels lists the levels"}
        scores: dict[str, int] = {}
        for rubric in RATED_RUBRICS:
            value = body.get(rubric)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
                return HTTPStatus.BAD_REQUEST, {"error": f"{rubric} must be an integer 1-5, got {str(value)[:20]!r}"}
            scores[rubric] = value
        if not scores:
            return HTTPStatus.BAD_REQUEST, {"error": f"give at least one of {', '.join(RATED_RUBRICS)} (1-5)"}
        comment = body.get("comment") or ""
        rater = body.get("rater")
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
            return HTTPStatus.BAD_REQUEST, {"error": f"comment must be text of at most {MAX_COMMENT} characters"}
        if rater is not None and (not isinstance(rater, str) or len(rater) > MAX_RATER):
            return HTTPStatus.BAD_REQUEST, {"error": f"rater must be text of at most {MAX_RATER} characters"}
        try:
            rid = self.store.add_rating(gid, scores, comment, rater=rater)
        except StoreError as exc:
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        return HTTPStatus.CREATED, {"id": rid, "level_id": gid, "scores": scores}


def _reply(status: int, obj: Any, *, close: bool = False) -> Any:
    from starlette.responses import JSONResponse

    headers = {"Cache-Control": "no-store"}
    if close:  # a body left unread: close the connection after the answer
        headers["Connection"] = "close"
    return JSONResponse(obj, status_code=status, headers=headers)


def _app(server: RatingServer, *, allowed_hosts: Sequence[str]) -> Any:
    """The rating page's ASGI application."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from generator.serving.asgi import BodyError, read_body

    def index(request: Request) -> Response:  # plain functions run on Starlette's thread pool
        return Response(server.page(), media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})

    def levels(request: Request) -> Response:
        counts = server._rated_counts()
        return _reply(200, [{"level_id": gid, "spec": row.get("spec"), "ratings": counts.get(gid, 0)}
                            for gid, row in server.rows.items()])

    def ratings(request: Request) -> Response:
        return _reply(200, [{"id": r.id, "generation_id": r.generation_id, "scores": r.scores,
                             "comment": r.comment, "rater": r.rater, "created": r.created}
                            for r in server.store.list_ratings()])

    def picture(request: Request) -> Response:
        png = server.picture(request.path_params["gid"])
        if png is None:
            return _reply(404, {"error": "no such level"})
        return Response(png, media_type="image/png")

    def refusal(request: Request) -> tuple[int, str] | None:
        """Why a POST does not come from this page (checked before the body is read), or None."""
        own = f"http://{request.headers.get('host', '')}"
        origin = request.headers.get("origin")
        if origin is not None and origin != own:
            return 403, f"cross-origin request from {origin[:80]!r} refused; rate on {server.url}"
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "cross-site request refused; rate on the page itself"
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return 415, "send the rating as Content-Type: application/json"
        if not hmac.compare_digest(request.headers.get("x-csrf-token", "").encode(), server.csrf_token.encode()):
            return 403, "missing or stale CSRF token (X-CSRF-Token); reload the rating page"
        return None

    async def add(request: Request) -> Response:
        refused = refusal(request)
        if refused is not None:
            return _reply(refused[0], {"error": refused[1]}, close=True)
        try:
            data = await read_body(request, max_bytes=MAX_BODY, timeout_s=server.io_timeout_s)
        except BodyError as exc:
            return _reply(exc.status, {"error": exc.message}, close=True)
        if not data:
            return _reply(400, {"error": f"send a JSON body of 1..{MAX_BODY} bytes"})
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            return _reply(400, {"error": "body is not JSON (or is nested too deeply)"})
        if not isinstance(body, dict):
            return _reply(400, {"error": "body must be a JSON object"})
        status, obj = await run_in_threadpool(server.add_rating, body)
        return _reply(int(status), obj)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        unread = request.method not in ("GET", "HEAD")
        if status == 405:
            return _reply(405, {"error": f"{request.method} is not supported on {request.url.path}"}, close=unread)
        return _reply(status, {"error": f"no page {request.url.path}; try / or /api/levels"}, close=unread)

    from starlette.concurrency import run_in_threadpool

    return Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/index.html", index, methods=["GET"]),
            Route("/api/levels", levels, methods=["GET"]),
            Route("/api/ratings", ratings, methods=["GET"]),
            Route("/api/ratings", add, methods=["POST"]),
            Route("/levels/{gid}.png", picture, methods=["GET"]),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))],
        exception_handlers={HTTPException: not_found},
    )
