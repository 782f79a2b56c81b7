"""Registry: versions with lineage, atomic promote/rollback, checksums refuse corrupt models."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from generator.errors import ModelLoadError
from generator.local.registry import SERVING_NAME, CorruptModelError, Registry, RegistryError, site_slug

SITE = "jac.levels:design_level#1a2b3c4d"


def _artefacts(tmp_path: Path, tag: str) -> Path:
    d = tmp_path / f"art-{tag}"
    (d / "sub").mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"weights-" + tag.encode())
    (d / "config.json").write_text(json.dumps({"tag": tag}))
    (d / "sub" / "tokenizer.json").write_text("{}")
    return d


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


def test_add_version_records_lineage_and_checksums(reg, tmp_path):
    v1 = reg.add_version(SITE, _artefacts(tmp_path, "a"), {"base": "micro", "dataset_hash": "abc", "dataset_size": 10,
                                                           "metrics": {"validity": 0.9}})
    v2 = reg.add_version(SITE, _artefacts(tmp_path, "b"), {"base": "micro", "parent": v1})
    assert (v1, v2) == ("v0001", "v0002")
    ms = reg.versions(SITE)
    assert [m.version for m in ms] == ["v0001", "v0002"]
    m1 = ms[0]
    assert m1.site == SITE and m1.base == "micro" and m1.dataset_hash == "abc" and m1.metrics["validity"] == 0.9
    assert set(m1.files) == {"model.safetensors", "config.json", "sub/tokenizer.json"}
    assert all(len(h) == 64 for h in m1.files.values())
    assert ms[1].parent == "v0001"
    assert reg.sites() == [SITE]
    assert reg.current(SITE) is None
    # manifest.json on disk is plain JSON with the contract's fields
    on_disk = json.loads((reg.site_dir(SITE) / "v0001" / "manifest.json").read_text())
    for key in ("site", "version", "base", "parent", "created", "dataset_hash", "metrics", "files", "state"):
        assert key in on_disk


def test_promote_and_rollback_follow_a_stack(reg, tmp_path):
    for tag in "abc":
        reg.add_version(SITE, _artefacts(tmp_path, tag), {"base": "micro"})
    reg.promote(SITE, "v0001")
    reg.promote(SITE, "v0002")
    assert reg.promote(SITE, "v0003").state == "current"
    states = {m.version: m.state for m in reg.versions(SITE)}
    assert states == {"v0001": "previous", "v0002": "previous", "v0003": "current"}
    assert reg.rollback(SITE).version == "v0002"
    assert {m.version: m.state for m in reg.versions(SITE)}["v0003"] == "retired"
    assert reg.rollback(SITE).version == "v0001"
    assert reg.rollback(SITE) is None
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback(SITE)


def test_unknown_version_is_a_clear_error(reg, tmp_path):
    reg.add_version(SITE, _artefacts(tmp_path, "a"), {})
    with pytest.raises(RegistryError, match=r"no version 'v0009'.*known: v0001"):
        reg.promote(SITE, "v0009")


def test_corrupt_artefact_is_refused(reg, tmp_path):
    v = reg.add_version(SITE, _artefacts(tmp_path, "a"), {})
    reg.promote(SITE, v)
    assert reg.model_dir(SITE) == reg.site_dir(SITE) / v
    (reg.site_dir(SITE) / v / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(CorruptModelError, match="checksum mismatch for model.safetensors"):
        reg.model_dir(SITE)
    with pytest.raises(ModelLoadError):  # loaders can catch the generator's load error
        reg.verify(SITE, v)
    v2 = reg.add_version(SITE, _artefacts(tmp_path, "b"), {})
    (reg.site_dir(SITE) / v2 / "config.json").unlink()
    with pytest.raises(CorruptModelError, match="missing"):
        reg.promote(SITE, v2)
    assert reg.current(SITE).version == v  # refused promote changed nothing


def test_slug_is_a_safe_directory_name():
    assert "/" not in site_slug("a/b:c#d") and ":" not in site_slug(SITE)


def test_crash_before_the_pointer_is_replaced_keeps_the_old_version(reg, tmp_path):
    reg.add_version(SITE, _artefacts(tmp_path, "a"), {})
    reg.add_version(SITE, _artefacts(tmp_path, "b"), {})
    reg.promote(SITE, "v0001")
    script = textwrap.dedent(f"""
        import os
        from generator.local.registry import Registry
        os.replace = lambda *a, **k: os._exit(9)   # die exactly between write and swap
        Registry({str(reg.root)!r}).promote({SITE!r}, "v0002")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[3])
    assert proc.returncode == 9
    assert reg.current(SITE).version == "v0001"
    assert json.loads((reg.site_dir(SITE) / SERVING_NAME).read_text())["current"] == "v0001"


def test_killing_a_process_mid_promote_never_tears_the_pointer(reg, tmp_path):
    reg.add_version(SITE, _artefacts(tmp_path, "a"), {})
    reg.add_version(SITE, _artefacts(tmp_path, "b"), {})
    reg.promote(SITE, "v0001")
    script = textwrap.dedent(f"""
        import sys
        from generator.local.registry import Registry
        r = Registry({str(reg.root)!r})
        print("ready", flush=True)
        i = 0
        while True:
            r.promote({SITE!r}, ("v0002", "v0001")[i % 2]); i += 1
    """)
    for delay in (0.05, 0.2, 0.35):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[3], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert reg.current(SITE).version in {"v0001", "v0002"}
        reg.verify(SITE, reg.current(SITE).version)
    assert not [p for p in reg.site_dir(SITE).iterdir() if p.name.startswith(".incoming")]


def test_concurrent_promotes_from_two_processes_lose_no_history(reg, tmp_path):
    for tag in "abcd":
        reg.add_version(SITE, _artefacts(tmp_path, tag), {})
    script = textwrap.dedent(f"""
        import sys
        from generator.local.registry import Registry
        r = Registry({str(reg.root)!r})
        for _ in range(15):
            for v in sys.argv[1:]:
                r.promote({SITE!r}, v)
    """)
    root = Path(__file__).parents[3]
    procs = [subprocess.Popen([sys.executable, "-c", script, *vs], cwd=root) for vs in (["v0001", "v0002"], ["v0003", "v0004"])]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    serving = json.loads((reg.site_dir(SITE) / SERVING_NAME).read_text())
    assert len(serving["history"]) == 59  # 60 promotions of a changing version, none lost
