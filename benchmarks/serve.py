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
the model's queue rather than the server.  Baseline in the same run:
``model_alone_ms_p50``, the same model call in the benchmark's own process
without HTTP, and ``completions_per_s_vs_model_alone``, the served
throughput over what that call allows one after another (1.0: the HTTP
stack costs nothing; the model serves one request at a time either way).
With ``--llama-cpp`` the same completions burst also goes to
llama-cpp-python's own server on the same student (an f16 GGUF through
:mod:`generator.llama_server`), and ``completions_per_s_vs_llama_cpp`` is
our throughput over its.  Local only: nothing leaves 127.0.0.1.

    python -m benchmarks.serve --connections 200 --json
    python -m benchmarks.serve --connections 200 --llama-cpp --json
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
#: The arguments every completion asks with.
ARGS: dict[str, str] = {"hero": "Ann", "town": "Bree"}


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


# ---------------------------------------------------------------------------------------------
# The benchmark: a real `python -m generator.serve` process, so the load generator and the
# server do not share one interpreter (and one GIL).


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(home: Path, port: int, log_path: Path, startup_s: float, cmd: list[str] | None = None,
                  ready_path: str = "/healthz") -> Any:
    import subprocess
    import urllib.request

    cmd = cmd or [sys.executable, "-m", "generator.serve", "--data-dir", str(home), "--site", BENCH_SITE,
                  "--port", str(port), "--quantize", "none", "--max-tries", "1", "--threads", "1",
                  "--log-level", "WARNING"]
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=2) as res:
                if res.status == 200:
                    return proc
        except OSError:
            time.sleep(0.25)
    _stop_server(proc)
    tail = log_path.read_text(errors="replace")[-1500:]
    raise RuntimeError(f"{' '.join(cmd[1:4])} did not come up within {startup_s:g} s:\n{tail}")


def _llama_cpp_completions(home: Path, connections: int, payload: bytes, timeout_s: float,
                           startup_s: float) -> dict[str, Any] | str:
    """The same completions burst against llama-cpp-python's own server on the same student (f16 GGUF)."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("pydantic_settings") is None:
        return "skipped: llama-cpp-python[server] is not installed (pip install 'dungeon-forge[llamacpp]')"
    from generator.llama_server import write_server_config

    port = _free_port()
    config = write_server_config(home, home / "llama", sites=[BENCH_SITE], port=port, n_ctx=256, threads=1)
    proc = _start_server(home, port, home / "llama.log", startup_s,
                         cmd=[sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)],
                         ready_path="/v1/models")
    try:
        request = http_request("POST", "/v1/chat/completions", host=f"127.0.0.1:{port}", body=payload,
                               headers={"Content-Type": "application/json"})
        hammer("127.0.0.1", port, request, 2, timeout_s=timeout_s)  # warm-up
        started = time.perf_counter()
        replies = hammer("127.0.0.1", port, request, connections, timeout_s=timeout_s)
        return summarise(replies, time.perf_counter() - started)
    finally:
        _stop_server(proc)


def _stop_server(proc: Any) -> None:
    import signal
    import subprocess

    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _model_alone(model_dir: Path, max_tokens: int, seed: int, calls: int = 40) -> float:
    """p50 ms of the completion's model call in this process (no HTTP): the baseline.

    Every request of a burst is the same bytes (same seed), so the baseline
    repeats that same call: the same tokens, the same work.
    """
    import torch

    from generator.local.student import LocalStudent

    torch.set_num_threads(1)  # as the server runs (--threads 1)
    student = LocalStudent.load(model_dir, quantize=None, site=BENCH_SITE)
    student.generate(ARGS, seed=seed, max_new_tokens=max_tokens, temperature=1.0)  # warm-up
    ms = []
    for _ in range(calls):
        started = time.perf_counter()
        student.generate(ARGS, seed=seed, max_new_tokens=max_tokens, temperature=1.0)
        ms.append((time.perf_counter() - started) * 1000.0)
    return round(statistics.median(ms), 2)


def run(connections: int = 200, *, max_tokens: int = 4, timeout_s: float = 60.0, seed: int = 0,
        startup_s: float = 180.0, llama_cpp: bool = False) -> dict[str, Any]:
    """Start the server on a tiny student, then fire one burst of ``connections`` at each endpoint."""
    from benchmarks.inference import _build_micro
    from generator.local.registry import Registry

    with tempfile.TemporaryDirectory(prefix="forge-bench-serve-") as tmp:
        home = Path(tmp)
        model_dir = home / "student"
        model_dir.mkdir()
        _build_micro("micro-1m", model_dir, seed)
        registry = Registry(home / "models")
        registry.promote(BENCH_SITE, registry.add_version(BENCH_SITE, model_dir, {"base": "micro",
                                                                                  "preset": "micro-1m"}))
        alone = _model_alone(model_dir, max_tokens, seed)
        port = _free_port()
        proc = _start_server(home, port, home / "serve.log", startup_s)
        try:
            health = http_request("GET", "/healthz", host=f"127.0.0.1:{port}")
            payload = json.dumps({
                "model": BENCH_SITE, "max_tokens": max_tokens, "seed": seed, "temperature": 1.0,
                "messages": [{"role": "user", "content": json.dumps(ARGS)}],
            }).encode()
            completion = http_request("POST", "/v1/chat/completions", host=f"127.0.0.1:{port}", body=payload,
                                      headers={"Content-Type": "application/json"})
            hammer("127.0.0.1", port, health, 2, timeout_s=timeout_s)  # warm-up: one of each, twice
            hammer("127.0.0.1", port, completion, 2, timeout_s=timeout_s)
            result: dict[str, Any] = {"connections": connections, "seed": seed, "max_tokens": max_tokens,
                                      "timeout_s": timeout_s, "server": "starlette+uvicorn (h11), 1 torch thread",
                                      "model": "micro-1m, untrained, fp32, generic site"}
            for name, request in (("healthz", health), ("completions", completion)):
                started = time.perf_counter()
                replies = hammer("127.0.0.1", port, request, connections, timeout_s=timeout_s)
                result[name] = summarise(replies, time.perf_counter() - started)
        finally:
            _stop_server(proc)
        if llama_cpp:
            result["llama_cpp_completions"] = _llama_cpp_completions(home, connections, payload, timeout_s, startup_s)
    result["model_alone_ms_p50"] = alone
    h, c = result["healthz"], result["completions"]
    # Baseline in the same run: the same completions called in process, one after another.
    if c["requests_per_s"]:
        result["completions_per_s_vs_model_alone"] = round(c["requests_per_s"] / (1000.0 / alone), 2)
    result["all_answered"] = h["answered"] == c["answered"] == connections
    result["errors"] = h["errors"] + c["errors"]
    other = result.get("llama_cpp_completions")
    if isinstance(other, dict) and other["requests_per_s"] and c["requests_per_s"]:
        result["completions_per_s_vs_llama_cpp"] = round(c["requests_per_s"] / other["requests_per_s"], 2)
    if h["latency_ms_p50"] and c["latency_ms_p50"]:
        result["completions_vs_healthz_p50"] = round(c["latency_ms_p50"] / h["latency_ms_p50"], 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=200, help="concurrent connections per burst (default 200)")
    parser.add_argument("--max-tokens", type=int, default=4, help="tokens per completion (default 4)")
    parser.add_argument("--timeout-s", type=float, default=60.0,
                        help="a connection without a full reply after this long counts as an error (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llama-cpp", action="store_true",
                        help="also burst llama-cpp-python's own server on the same student (needs the [llamacpp] extra)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 5000 or args.max_tokens < 1 or not args.timeout_s > 0:
        parser.error("--connections must be 1..5000, --max-tokens >= 1, --timeout-s > 0")
    from generator.guards.output import json_stdout

    with json_stdout(args.json) as emit:  # what the server and libraries print goes to stderr under --json
        try:
            result = run(args.connections, max_tokens=args.max_tokens, timeout_s=args.timeout_s, seed=args.seed,
                         llama_cpp=args.llama_cpp)
        except (RuntimeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            if args.json:
                emit({"benchmark": "serve", "error": str(exc)})
            return 1
        if args.json:
            emit(result)
    if not args.json:
        print(f"generator.serve under {args.connections} concurrent connections ({result['model']})")
        for name in ("healthz", "completions"):
            r = result[name]
            print(f"  {name:<12} answered {r['answered']}/{r['connections']}  errors {r['errors']}  "
                  f"p50 {r['latency_ms_p50']} ms  p99 {r['latency_ms_p99']} ms  {r['requests_per_s']} req/s")
        other = result.get("llama_cpp_completions")
        if isinstance(other, dict):
            print(f"  llama.cpp    answered {other['answered']}/{other['connections']}  errors {other['errors']}  "
                  f"p50 {other['latency_ms_p50']} ms  p99 {other['latency_ms_p99']} ms  {other['requests_per_s']} req/s")
        elif other:
            print(f"  llama.cpp    {other}")
        print(f"  completions vs healthz p50: {result.get('completions_vs_healthz_p50')}x; model alone "
              f"{result['model_alone_ms_p50']} ms a call, served throughput "
              f"{result.get('completions_per_s_vs_model_alone')}x of calling it in process")
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
