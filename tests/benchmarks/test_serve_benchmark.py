"""``python -m benchmarks.serve``: a real server process under a burst of connections, and the load client."""

from __future__ import annotations

import json

import pytest

from benchmarks.serve import Reply, http_request, main, summarise

pytest.importorskip("torch")


def test_the_benchmark_answers_every_connection_and_reports_latency(capsys):
    assert main(["--connections", "20", "--max-tokens", "2", "--timeout-s", "60", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for name in ("healthz", "completions"):
        r = out[name]
        assert (r["connections"], r["answered"], r["ok"], r["errors"]) == (20, 20, 20, 0)
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p99"] <= r["latency_ms_max"]
    assert out["all_answered"] is True and out["errors"] == 0
    assert out["model_alone_ms_p50"] > 0 and out["completions_per_s_vs_model_alone"] > 0


def test_summary_counts_unanswered_and_non_200_as_errors():
    replies = [Reply(200, 10.0), Reply(200, 30.0), Reply(503, 20.0), Reply(None, 5000.0, "no reply within 5 s")]
    got = summarise(replies, wall_s=2.0)
    assert (got["answered"], got["ok"], got["errors"]) == (3, 2, 2)
    assert got["error_causes"] == {"HTTP 503": 1, "no reply within 5 s": 1}
    assert got["latency_ms_p50"] == 20.0 and got["latency_ms_max"] == 30.0 and got["requests_per_s"] == 2.0


def test_requests_are_well_formed_http():
    raw = http_request("POST", "/v1/x", host="h:1", body=b"{}", headers={"Content-Type": "application/json"})
    assert raw == (b"POST /v1/x HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 2\r\n\r\n{}")


def test_bad_usage_is_refused(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--connections", "0"])
    assert done.value.code == 2 and "--connections" in capsys.readouterr().err
