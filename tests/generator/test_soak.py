"""The short soak (issue 15): a few hundred facade requests against a fake teacher injecting every fault kind.

Goal, as in the 10,000-request run (docs/benchmarks.md): every request served
a level the validator passes on its own, no exception, every injected fault
on record, the store intact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import soak
from tests.fakes import jac_support as support

FAULT_KINDS = support.load_fake("soak_teacher").FAULT_KINDS
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report():
    # A generous client timeout: on a loaded 2-core box a normal answer must not look like an injected slow one.
    return soak.run(240, workers=4, seed=7, fault_rate=0.5, time_limit_s=120, teacher_timeout_s=3.0, slow_s=4.0)


def test_every_request_is_served_a_valid_level_without_exceptions(report):
    assert not report["stopped_early"] and report["requests"] == 240
    assert report["exceptions"] == 0, report["exception_types"]
    assert report["served_valid"] == report["requests"]
    assert report["served_by"].get("llm", 0) > 100  # the teacher still serves most requests


def test_every_fault_kind_was_injected_and_left_a_trace(report):
    assert set(report["faults_injected"]) == set(FAULT_KINDS)
    for kind, t in report["trace"].items():
        # at least what was injected: a real timeout of a loaded machine is recorded too, and is no injected fault
        assert t["recorded"] >= t["injected"], (kind, t, report["faults_recorded"])
    assert report["faults_unrecorded"] == 0
    assert report["faults_recorded"]["abandoned"] == 0


def test_the_store_is_intact_and_latency_is_reported_beside_a_fault_free_baseline(report):
    assert report["integrity_check"] == "ok"
    assert 0 < report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    assert report["peak_rss_mb"] > 0 and len(report["rss_mb"]) == 10
    base = report["baseline"]
    assert base["requests"] == 24 and base["faults_injected_total"] == 0 and base["served_valid"] == 24
    assert base["integrity_check"] == "ok" and report["p50_vs_baseline"] > 0


def test_the_cli_prints_one_json_object(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--requests", "12", "--workers", "2",
                           "--fault-rate", "0.3", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "FORGE_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["requests"] == 12 and doc["served_valid"] == 12 and doc["integrity_check"] == "ok"
    assert "Traceback" not in proc.stderr
