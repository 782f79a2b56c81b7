"""``python -m benchmarks.store`` runs end to end on both backends and accounts for every row (no timing asserted)."""

from __future__ import annotations

import json


def test_two_game_processes_on_both_backends_lose_nothing(pg_url, capsys, monkeypatch):
    import subprocess

    from benchmarks.store import main

    argvs: list[list[str]] = []
    real_popen = subprocess.Popen

    def popen(args, *a, **kw):
        argvs.append([str(x) for x in args])
        return real_popen(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", popen)
    assert main(["--backend", "both", "--clients", "2", "--seconds", "1", "--warmup-levels", "1",
                 "--url", pg_url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for backend in ("sqlite", "postgres"):
        run = doc[backend]
        assert run["clients"] == 2 and run["errors"] == 0 and run["lost_rows"] == 0
        assert run["rows_claimed"] == run["rows_in_store"] and run["rows_claimed"]["calls"] > 0
        assert run["rows_claimed"]["events"] > run["rows_claimed"]["calls"]  # telemetry: many events per level
        assert run["writes_per_s"] > 0 and run["record_ms_p99"] >= run["record_ms_p50"] > 0
        assert run["trainer_reads"]["runs"] >= 1 and run["trainer_reads"]["errors"] == 0
        assert "need 1000000000" in run["trainer_reads"]["last"]  # it read the store and decided not to train
    assert doc["ratio_writes_per_s"] > 0
    # the store URL (it may hold a password) is handed over in the environment, never on a command line
    assert argvs and not any(pg_url in arg for argv in argvs for arg in argv)
