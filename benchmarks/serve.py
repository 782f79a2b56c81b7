"""Load test of ``python -m generator.serve``: N concurrent connections, every one must be answered.

Starts the server on ``127.0.0.1`` (a free port) with a tiny untrained
student built from config (no download, no training), then opens
``--connections`` TCP connections at once, each sending one request, and
waits for each reply (bounded by ``--timeout-s``).  Reported per endpoint:
``answered`` (a complete HTTP reply arrived), ``ok`` (status 200),
``errors`` (no reply, a reset, a timeout or a non-200 status),
``latency_ms_p50`` / ``latency_ms_p99`` (connect to last byte) and
``requests_per_s`` (connections / wall time of the burst).

Endpoints: ``GET /healthz`` (the HTTP stack alone) and
``POST /v1/chat/completions`` on a generic call site's student, a few
tokens each (the HTTP stack plus a model serialised on its lock).  The ratio
``completions_vs_healthz_p50`` says how much of a completion's latency is
the model's queue rather than the server.  Local only: nothing leaves
127.0.0.1.

    python -m benchmarks.serve --connections 200 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Reply", "hammer", "http_request", "run", "summarise"]

#: The generic call site the benchmark's tiny student is promoted for.
BENCH_SITE = "bench.story:write_quest#00000000"


@dataclass(frozen=True)
class Reply:
    """What one connection got: ``status`` None when no complete reply arrived (``error`` says why)."""

    status: int | None
    latency_ms: float
    error: str | None = None
    body: bytes = b""


def http_request(method: str, path: str, *, host: str = "127.0.0.1", body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> bytes:
    """One HTTP/1.1 request as bytes, with ``Connection: close`` (the reply ends at EOF)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def _one(host: str, port: int, request: bytes, timeout_s: float) -> Reply:
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            await writer.drain()
            data = await reader.read()  # Connection: close, so the reply ends at EOF
    except TimeoutError:
        return Reply(None, (time.perf_counter() - started) * 1000.0, f"no reply within {timeout_s:g} s")
    except OSError as exc:
        return Reply(None, (time.perf_counter() - started) * 1000.0, f"{type(exc).__name__}: {exc}")
    finally:
        if writer is not None:
            writer.close()
    elapsed = (time.perf_counter() - started) * 1000.0
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return Reply(None, elapsed, f"not an HTTP reply ({len(data)} bytes)")
    return Reply(int(parts[1]), elapsed, None, body)


def hammer(host: str, port: int, request: bytes, connections: int, *, timeout_s: float = 30.0) -> list[Reply]:
    """Open ``connections`` connections at once, send ``request`` on each, and return every reply."""

    async def burst() -> list[Reply]:
        return list(await asyncio.gather(*(_one(host, port, request, timeout_s) for _ in range(connections))))

    return asyncio.run(burst())


def summarise(replies: list[Reply], wall_s: float) -> dict[str, Any]:
    """Counts and latency percentiles of one burst (``errors``: anything but a 200)."""
    lat = sorted(r.latency_ms for r in replies if r.status is not None)
    answered = len(lat)
    ok = sum(r.status == 200 for r in replies)

    def pct(q: float) -> float | None:
        return round(lat[min(answered - 1, round(q * (answered - 1)))], 1) if answered else None

    causes = Counter(r.error or f"HTTP {r.status}" for r in replies if r.status != 200)
    return {
        "connections": len(replies),
        "answered": answered,
        "ok": ok,
        "errors": len(replies) - ok,
        "error_causes": dict(causes.most_common(5)),
        "latency_ms_p50": round(statistics.median(lat), 1) if lat else None,
        "latency_ms_p99": pct(0.99),
        "latency_ms_max": round(lat[-1], 1) if lat else None,
        "requests_per_s": round(len(replies) / wall_s, 1) if wall_s > 0 else None,
    }
