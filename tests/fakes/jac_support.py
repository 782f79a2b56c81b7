"""Helpers shared by the Jac/byllm tests: load fakes, build MockLLMs, read captured calls."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

FAKES = Path(__file__).resolve().parent
JACPROG = FAKES.parent / "generator" / "jacprog"

# litellm would otherwise try to download its price list on import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def load_fake(name: str) -> ModuleType:
    """Import ``tests/fakes/<name>.py`` (tests are not a package)."""
    mod_name = f"forge_fakes_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, FAKES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def import_recipes() -> ModuleType:
    """The foreign Jac program, imported in-process as module ``recipes``."""
    import jaclang  # noqa: F401  (installs the .jac importer and the plugins)

    if str(JACPROG) not in sys.path:
        sys.path.insert(0, str(JACPROG))
    import recipes  # type: ignore[import-not-found]

    return recipes


def mock_llm(*outputs: Any) -> Any:
    """A byllm MockLLM answering ``outputs`` in order (objects, MockRawResponse, MockError)."""
    from byllm.lib import MockLLM

    # A context window given up front keeps litellm from looking "mockllm" up.
    return MockLLM(model_name="mockllm", ctx_window=128_000, config={"outputs": list(outputs)})


def raw(content: str) -> Any:
    from byllm.lib import MockRawResponse

    return MockRawResponse(content=content)


def read_calls(home: str | os.PathLike[str]) -> list[Any]:
    """Every CallRecord captured into a data dir: from the store, or the pending JSONL file."""
    import msgspec

    from generator.store.records import CallRecord

    records: list[Any] = []
    pending = Path(home) / "runs" / "capture-pending.jsonl"
    if pending.exists():
        records += [msgspec.json.decode(line, type=CallRecord) for line in pending.read_bytes().splitlines() if line]
    db = Path(home) / "forge.db"
    if db.exists():
        from generator.store import Store

        with Store.open(db) as store:
            records += [stored.record for stored in store.iter_calls()]
    return records


SMALL_LEVEL: dict[str, Any] = {
    "name": "Test Vault",
    "width": 16,
    "height": 12,
    "rows": ["#" * 16] + ["#" + "." * 14 + "#"] * 10 + ["#" * 16],
    "spawn": {"x": 1, "y": 1},
    "exit": {"x": 14, "y": 10},
    "enemies": [{"kind": "rat", "x": 12, "y": 8}],
    "items": [{"kind": "potion", "x": 5, "y": 5}],
    "theme": "crypt",
}
SMALL_SPEC: dict[str, Any] = {"width": 16, "height": 12, "difficulty": 2, "enemies": 1, "items": 1, "theme": "crypt"}


def level_json(**changes: Any) -> str:
    return json.dumps({**SMALL_LEVEL, **changes})
