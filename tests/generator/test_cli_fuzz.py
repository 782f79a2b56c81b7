"""Seeded-mutation fuzz of every CLI that reads a file or a spec (issue 15).

Valid inputs (a level, a spec, a spec list, a training preset) are mutated
byte-wise and structurally (nasty values in place of fields, duplicated keys,
truncation, deep nesting, NULs, huge numbers) and fed to each command's
``main``.  Whatever the input, a command returns its documented status (no
exception escapes, so no traceback), and a refusal carries a message (stderr,
or the ``error`` of the one JSON object on stdout).  Bounded: a fixed number
of cases per command from a fixed seed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.fakes import jac_support as support

SEED = 20261206
SPEC = dict(support.SMALL_SPEC)
NASTY: list[object] = [
    None, True, -1, 0, 2**63, -(2**70), 1e308, 3.5, "", "\x00", "é" * 3, "@", "#" * 5000, [], [[[[]]]], {}, {"x": 1},
    "NaN", "1e9", [1, 2, 3], "crypt\x00", " crypt",
]


def _mutate_json(doc: object, rng: random.Random) -> object:
    """One structural change somewhere in a JSON document."""
    doc = json.loads(json.dumps(doc))
    paths: list[tuple[object, object]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k in list(node):
                paths.append((node, k))
                walk(node[k])
        elif isinstance(node, list):
            for i in range(len(node)):
                paths.append((node, i))
                walk(node[i])

    walk(doc)
    if not paths:
        return rng.choice(NASTY)
    strings = [(p, k) for p, k in paths if isinstance(p[k], str) and p[k]]  # type: ignore[index]
    if strings and rng.random() < 0.3:  # one character of a string (a row, a kind, a theme) changed
        parent, key = rng.choice(strings)
        text = parent[key]  # type: ignore[index]
        i = rng.randrange(len(text))
        parent[key] = text[:i] + rng.choice(["@", "\x00", "é", "\u2588", "X", " ", "\ud83d"]) + text[i + 1:]  # type: ignore[index]
        return doc
    parent, key = rng.choice(paths)
    op = rng.randrange(4)
    if op == 0:
        parent[key] = rng.choice(NASTY)  # type: ignore[index]
    elif op == 1 and isinstance(parent, dict):
        del parent[key]
    elif op == 2 and isinstance(parent, dict):
        parent[f"{key}_extra"] = rng.choice(NASTY)
    elif isinstance(parent, list):
        parent.append(rng.choice(NASTY))
    else:
        parent[key] = [parent[key]] * rng.randrange(0, 4)  # type: ignore[index]
    return doc


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(6)
        if not b:
            b += bytes([rng.randrange(256)])
        elif op == 0:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1:
            del b[rng.randrange(len(b)):]
        elif op == 2:
            i = rng.randrange(len(b))
            b[i:i] = rng.choice([b"\x00", b"\xff\xfe", b"[" * 2000, b'"width":', b",", b"}", b"\\u0000", "é".encode()])
        elif op == 3:
            i, j = sorted(rng.randrange(len(b)) for _ in range(2))
            b[i:i] = b[i:j]
        elif op == 4:
            i = rng.randrange(len(b))
            del b[i:i + rng.randrange(1, 20)]
        else:
            b = bytearray(data.replace(b'"width"', b'"width": 20, "width"', 1))
    return bytes(b)


def _cases(valid: bytes, doc: object, n: int, rng: random.Random, *, jsonl: bool = False) -> list[bytes]:
    out = [valid]
    for _ in range(n):
        if rng.random() < 0.5:
            text = json.dumps(_mutate_json(doc, rng), ensure_ascii=rng.random() < 0.5)
            out.append(text.encode("utf-8", "surrogatepass"))
        else:
            out.append(_mutate_bytes(valid, rng))
    if jsonl:
        out = [b"\n".join(rng.choice(out) for _ in range(rng.randrange(1, 4))) for _ in range(len(out))]
    return out


def _check(status: int, allowed: set[int], capsys: pytest.CaptureFixture[str], *, as_json: bool) -> None:
    out, err = capsys.readouterr()
    assert status in allowed, (status, out[-500:], err[-500:])
    assert "Traceback" not in out + err
    if as_json:
        doc = json.loads(out)  # exactly one object, whatever the input
        assert isinstance(doc, dict)
        if status != 0:
            assert doc.get("error") or doc.get("failures") or doc.get("invalid"), doc
    elif status != 0:
        assert err.strip() or out.strip(), "a refusal without a message"


def test_validate_file_and_spec_fuzz(tmp_path, capsys):
    from generator.validate import main

    rng = random.Random(SEED)
    level = support.SMALL_LEVEL
    path = tmp_path / "level.json"
    for i, data in enumerate(_cases(support.level_json().encode(), level, 150, rng)):
        path.write_bytes(data)
        as_json = i % 2 == 0
        status = main([str(path), *(["--json"] if as_json else [])])
        _check(status, {0, 1, 2}, capsys, as_json=as_json)
    spec_file = tmp_path / "spec.json"
    for i, data in enumerate(_cases(json.dumps(SPEC).encode(), SPEC, 80, rng)):
        spec_file.write_bytes(data)
        path.write_text(support.level_json())
        status = main([str(path), "--spec", f"@{spec_file}", *(["--json"] if i % 2 else [])])
        _check(status, {0, 1, 2}, capsys, as_json=bool(i % 2))


def test_generate_spec_fuzz(tmp_path, capsys):
    from generator.generate import main

    rng = random.Random(SEED + 1)
    spec_file = tmp_path / "spec.json"
    for i, data in enumerate(_cases(json.dumps(SPEC).encode(), SPEC, 80, rng)):
        as_json = i % 2 == 0
        if i % 3:
            spec_file.write_bytes(data)
            arg = f"@{spec_file}"
        else:
            arg = data.decode("utf-8", "replace").replace("\x00", "")  # argv cannot hold NUL
        status = main(["--spec", arg, "--backend", "procedural", "--no-record", *(["--json"] if as_json else [])])
        _check(status, {0, 2}, capsys, as_json=as_json)


def test_evaluate_specs_file_fuzz(tmp_path, capsys):
    from generator.evaluate.__main__ import main

    rng = random.Random(SEED + 2)
    specs = tmp_path / "specs.jsonl"
    for i, data in enumerate(_cases(json.dumps(SPEC).encode(), SPEC, 40, rng, jsonl=True)):
        specs.write_bytes(data)
        as_json = i % 2 == 0
        status = main(["--specs", str(specs), "--backends", "procedural", "--bots", "none", "--no-report", "--quiet",
                       *(["--json"] if as_json else [])])
        _check(status, {0, 2}, capsys, as_json=as_json)


def test_train_preset_fuzz(tmp_path, capsys):
    yaml = pytest.importorskip("yaml")
    from generator.train import main

    rng = random.Random(SEED + 3)
    root = Path(__file__).resolve().parents[2]
    valid = (root / "trainer" / "presets" / "tiny-test.yaml").read_bytes()
    doc = yaml.safe_load(valid)
    preset = tmp_path / "preset.yaml"
    for i, data in enumerate(_cases(valid, doc, 40, rng)):
        preset.write_bytes(data)
        status = main(["--preset", str(preset), "--if-needed", "--json"])
        _check(status, {0, 1}, capsys, as_json=True)
