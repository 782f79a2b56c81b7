"""A fake OpenAI-compatible teacher for soak runs: valid levels, and faults on a seeded schedule.

It answers ``POST /v1/chat/completions`` on 127.0.0.1 the way a provider
answers the Jac teacher (``design_level`` in ``jac/levels.jac``): it reads
the spec from the prompt and answers a level for it, valid by the project's
gates (the procedural generator draws it).  With probability ``fault_rate``
a request instead gets one fault, drawn by a ``random.Random`` seeded with
``(seed, request number)``:

=================  ============================================================
``http_500``       500 with an OpenAI-style error body
``http_429``       429 with ``Retry-After`` (``retry_after_s``)
``slow``           a valid answer after ``slow_s`` (past the client's timeout)
``dropped``        the connection closes with no answer
``non_json``       200 whose body is HTML, not JSON
``truncated``      200 whose completion JSON is cut in half
``schema``         a completion whose content breaks the output schema
``gate_V1``..``V7``a level that parses but fails that gate (checked with the
                   project's validator before it is sent)
``unknown_tile``   a level with ``@``, NUL or ``é`` drawn into a row
=================  ============================================================

``injected`` counts what was sent, by kind, and ``requests`` every request.
The server is a ``ThreadingHTTPServer`` (one thread per connection).

>>> with SoakTeacher(seed=1, fault_rate=0.0) as teacher:
...     teacher.url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

# loaded by file path too (benchmarks.soak, tests.fakes.jac_support.load_fake): its sibling comes from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_server import LoopbackServer  # noqa: E402

FAULT_KINDS: tuple[str, ...] = (
    "http_500", "http_429", "slow", "dropped", "non_json", "truncated", "schema",
    "gate_V1", "gate_V2", "gate_V3", "gate_V4", "gate_V5", "gate_V6", "gate_V7", "unknown_tile",
)
_SPEC = re.compile(r"Spec\(width=(\d+), height=(\d+), difficulty=(\d+), enemies=(\d+), items=(\d+), theme='(\w+)'\)")


class SoakTeacher(LoopbackServer):
    """``with SoakTeacher(seed=0, fault_rate=0.3) as t:`` then point the teacher at ``t.url``."""

    def __init__(self, *, seed: int = 0, fault_rate: float = 0.3, kinds: tuple[str, ...] = FAULT_KINDS,
                 slow_s: float = 1.5, retry_after_s: float = 0.05) -> None:
        self.seed, self.fault_rate, self.kinds = seed, fault_rate, tuple(kinds)
        self.slow_s, self.retry_after_s = slow_s, retry_after_s
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._lock = threading.Lock()
        super().__init__(name="soak-teacher", queue_size=256)

    # ------------------------------------------------------------------ the schedule

    def _draw(self) -> tuple[int, random.Random, str]:
        with self._lock:
            n = self.requests
            self.requests += 1
        rng = random.Random(self.seed * 1_000_003 + n)
        kind = rng.choice(self.kinds) if self.kinds and rng.random() < self.fault_rate else "ok"
        return n, rng, kind

    def _count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    # ------------------------------------------------------------------ answers

    def answer(self, body: dict[str, Any]) -> tuple[str, int, dict[str, str], bytes | None]:
        """(kind sent, status, headers, body or None to drop the connection) for one request."""
        n, rng, kind = self._draw()
        model = str(body.get("model") or "fake")
        spec = _spec_of(body)
        if kind == "http_500":
            return kind, 500, {}, _error(500, "injected server error")
        if kind == "http_429":
            return kind, 429, {"Retry-After": str(self.retry_after_s)}, _error(429, "injected rate limit")
        if kind == "dropped":
            return kind, 0, {}, None
        if kind == "non_json":
            return kind, 200, {"Content-Type": "text/html"}, b"<html><body>502 Bad Gateway (injected)</body></html>"
        if spec is None:  # not a level request: answer something harmless
            return "ok", 200, {}, _completion(model, json.dumps({"note": "no spec in the prompt"}))
        level = _valid_level(spec, seed=rng.randrange(1 << 30))
        if kind == "truncated":
            whole = _completion(model, json.dumps(level))
            return kind, 200, {}, whole[: len(whole) // 2]
        if kind == "schema":
            return kind, 200, {}, _completion(model, json.dumps({"name": 7, "rows": "not a list", "spawn": [1, 2]}))
        if kind.startswith("gate_") or kind == "unknown_tile":
            kind, level = _broken(level, spec, kind, rng)
        return kind, 200, {}, _completion(model, json.dumps(level))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                kind, status, headers, payload = server.answer(body)
                server._count(kind)
                if kind == "slow":
                    time.sleep(server.slow_s)
                if payload is None:  # dropped
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeouts)
                    self.close_connection = True

        return Handler


# ---------------------------------------------------------------------- helpers


def _spec_of(body: dict[str, Any]) -> dict[str, Any] | None:
    for message in body.get("messages") or ():
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"text": content}]
        for part in parts:
            m = _SPEC.search(str(part.get("text") or "")) if isinstance(part, dict) else None
            if m:
                w, h, d, e, i, theme = m.groups()
                return {"width": int(w), "height": int(h), "difficulty": int(d), "enemies": int(e),
                        "items": int(i), "theme": theme}
    return None


def _completion(model: str, content: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-soak", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 600, "completion_tokens": 400, "total_tokens": 1000},
    }).encode()


def _error(status: int, message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "server_error", "code": status}}).encode()


def _valid_level(spec: dict[str, Any], seed: int) -> dict[str, Any]:
    from engine.core.level import LevelSpec
    from generator.backends.procedural import generate_procedural

    return generate_procedural(LevelSpec(**spec), seed).to_dict()


def _gates_failed(level: dict[str, Any], spec: dict[str, Any]) -> set[str]:
    from engine.core.level import LevelSpec
    from generator.validation import validate_level

    report = validate_level(json.dumps(level), LevelSpec(**spec))
    return {f.gate for f in report.failures}


def _set(rows: list[str], x: int, y: int, ch: str) -> None:
    rows[y] = rows[y][:x] + ch + rows[y][x + 1:]


def _broken(level: dict[str, Any], spec: dict[str, Any], kind: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """``level`` changed to fail the gate ``kind`` names (checked); falls back to an open border (V2)."""
    lv = json.loads(json.dumps(level))
    rows: list[str] = lv["rows"]
    w, h = lv["width"], lv["height"]
    sx, sy = lv["spawn"]["x"], lv["spawn"]["y"]
    target = kind.removeprefix("gate_")
    if kind == "unknown_tile":
        floor = [(x, y) for y in range(1, h - 1) for x in range(1, w - 1) if rows[y][x] == "."]
        x, y = rng.choice(floor)
        _set(rows, x, y, rng.choice(["@", "\x00", "é"]))
        return kind, lv
    if target == "V1":
        y = rng.randrange(1, h - 1)
        rows[y] = rows[y][:-2] + rows[y][-1]  # one tile short
    elif target == "V2":
        _set(rows, rng.randrange(1, w - 1), 0, ".")
    elif target == "V3":
        lv["items"] = [*lv["items"], {"kind": "potion", "x": 0, "y": 0}]  # on the border wall
    elif target == "V4":
        del lv["exit"]  # on the spawn's tile would be V3 (overlap); no exit at all is V4
    elif target == "V5":
        near = [(sx + dx, sy + dy) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)) if rows[sy + dy][sx + dx] != "#"]
        if near:
            x, y = near[0]
            lv["enemies"] = [{"kind": _enemy_kind(lv), "x": x, "y": y}] + lv["enemies"][1:]
    elif target == "V6":
        ex, ey = lv["exit"]["x"], lv["exit"]["y"]
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            _set(rows, ex + dx, ey + dy, "#")
    elif target == "V7":
        for y in range(1, h - 1):
            rows[y] = "#" + "." * (w - 2) + "#"
        if 2 * (w + h) - 4 >= 0.1 * w * h:  # the border alone keeps it dense enough: wall it up instead
            keep = {(sx, sy), (lv["exit"]["x"], lv["exit"]["y"])}
            for y in range(1, h - 1):
                rows[y] = "#" + "".join("." if (x, y) in keep or y == sy else "#" for x in range(1, w - 1)) + "#"
    if target in _gates_failed(lv, spec):
        return kind, lv
    lv = json.loads(json.dumps(level))
    _set(lv["rows"], 1 + (w - 2) // 2, 0, ".")
    return "gate_V2", lv


def _enemy_kind(level: dict[str, Any]) -> str:
    from engine.core.content import theme_enemy_kinds

    kinds = theme_enemy_kinds(level["theme"])
    return kinds[0] if kinds else "rat"
