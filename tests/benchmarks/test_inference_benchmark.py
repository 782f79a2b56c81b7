"""``python -m benchmarks.inference``: every variant measured in one run, the teacher included."""

from __future__ import annotations

import json

from benchmarks.inference import main


def test_inference_benchmark_reports_student_variants_and_the_teacher(capsys, one_torch_thread):
    assert main(["--preset", "micro-1m", "--levels", "2", "--batch", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("hf_generate_fp32", "fp32", "int8", "int8_batched", "procedural"):
        assert out[key]["ms_per_level_p50"] > 0 and out[key]["ms_per_level_p95"] >= out[key]["ms_per_level_p50"]
        assert out[key]["tokens_per_s"] > 0
    assert out["procedural"]["backend"] == "procedural"
    assert out["served"] in ("gguf_q8_0_worker", "int8")
    assert out["speedup_served_vs_fp32"] > 0 and out["served_ms_per_level_p50"] == out[out["served"]]["ms_per_level_p50"]
