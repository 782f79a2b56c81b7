"""Who may import whom (docs/decisions.md D23), read from the source tree with ``ast``.

Every ``import`` counts, lazy ones inside functions included (a lazy import
is still an arrow: it only hides a cycle until run time); imports under
``if TYPE_CHECKING:`` do not.  Importing ``a.b.c`` runs ``a`` and ``a.b``
first, so it is an arrow to those packages too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "generator", "trainer", "games")
#: Command-line modules: entry points, never imported by a game or a library module.
CLI_MODULES = frozenset({
    "generator.generate", "generator.validate", "generator.train", "generator.sites", "generator.models",
    "generator.serve", "generator.llama_server", "generator.evaluate.__main__", "games.sample_dungeon.__main__",
})
#: The command line that runs the trainer (lazily, so the game never pays for torch).
TRAINER_CLIS = frozenset({"generator.train"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imported_names(tree: ast.Module) -> list[str]:
    """Dotted names a module imports (``from a.b import c`` gives ``a.b.c``), outside TYPE_CHECKING blocks."""
    hidden = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


@cache
def _raw_imports() -> dict[str, frozenset[str]]:
    """Module -> every dotted name it imports (third-party ones included)."""
    return {m: frozenset(_imported_names(ast.parse(p.read_text(encoding="utf-8")))) for m, p in _sources().items()}


def _project_module(name: str) -> str | None:
    """The longest prefix of ``name`` that is a module of this project (``a.b.Class`` -> ``a.b``)."""
    sources = _sources()
    parts = name.split(".")
    while parts:
        if ".".join(parts) in sources:
            return ".".join(parts)
        parts.pop()
    return None


@cache
def _graph() -> dict[str, frozenset[str]]:
    """Module -> project modules it runs on import (the target and the packages above it)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, names in _raw_imports().items():
        for name in names:
            target = _project_module(name)
            if target is None:
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                runs = ".".join(parts[:i])
                if runs in _sources() and runs != module and not module.startswith(runs + "."):
                    graph[module].add(runs)
    return {m: frozenset(graph.get(m, ())) for m in _sources()}


def _arrows(src_prefix: str, dst_prefixes: tuple[str, ...], *, allowed: frozenset[str] = frozenset()) -> list[str]:
    def under(name: str, prefix: str) -> bool:
        return not prefix or name == prefix or name.startswith(prefix + ".")

    return sorted(
        f"{m} -> {name}"
        for m, names in _raw_imports().items()
        if under(m, src_prefix) and m not in allowed
        for name in names
        if any(under(name, d) for d in dst_prefixes)
    )


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_sees_lazy_imports_and_cycles():
    tree = ast.parse("import a\ndef f():\n    from b.c import d\nif TYPE_CHECKING:\n    import e\n")
    assert _imported_names(tree) == ["a", "b.c", "b.c.d"]
    assert _cycles({"x": frozenset({"y"}), "y": frozenset({"x"}), "z": frozenset()}) == [["x", "y"]]
    assert "generator.capture.session" in _graph()["generator.capture.call"]  # a real arrow is found


def test_no_import_cycle_between_project_modules():
    assert _cycles(_graph()) == []


def test_capture_and_routing_meet_only_in_the_answering_interface():
    # routing implements the local-answer interface of generator.answering and never imports capture;
    # capture starts a routing session through the routing package's public API only.
    assert _arrows("generator.routing", ("generator.capture",)) == []
    internals = [a for a in _arrows("generator.capture", ("generator.routing",))
                 if a.split(" -> ")[1] not in ("generator.routing", "generator.routing.start_foreign_session")]
    assert internals == []


def test_local_runtime_sees_only_the_backend_protocol():
    assert [a for a in _arrows("generator.local", ("generator.backends",))
            if not a.split(" -> ")[1].startswith("generator.backends.base")] == []


def test_generator_never_imports_the_trainer_games_or_the_renderer():
    assert _arrows("generator", ("trainer",), allowed=TRAINER_CLIS) == []
    assert _arrows("generator", ("games", "engine.render", "arcade")) == []


def test_trainer_never_imports_games_the_renderer_or_the_serving_side():
    assert _arrows("trainer", ("games", "engine.render", "arcade")) == []
    # the procedural generator is a pure function of (spec, seed): the trainer may use it as a noise floor
    serving = _arrows("trainer", ("generator.facade", "generator.backends", "generator.capture", "generator.routing"))
    assert [a for a in serving if not a.split(" -> ")[1].startswith("generator.backends.procedural")] == []


@pytest.mark.parametrize("forbidden", ["yaml", "arcade", "engine.render", "engine.picture", "generator",
                                       "trainer", "games", "torch"])
def test_engine_core_stays_headless_and_free_of_file_formats(forbidden):
    assert _arrows("engine.core", (forbidden,)) == []


def test_games_use_public_apis_only():
    assert _arrows("games", ("trainer",)) == []
    assert [a for a in _arrows("games", ("generator",))
            if _project_module(a.split(" -> ")[1]) in CLI_MODULES] == []


def test_nothing_imports_games_or_a_cli_module():
    outside_games = [a for a in _arrows("", ("games",)) if not a.startswith("games")]
    assert outside_games == []
    cli = [a for a in _arrows("", tuple(CLI_MODULES)) if a.split(" -> ")[0] not in CLI_MODULES]
    assert cli == []


def test_only_the_byllm_boundary_imports_jaclang_or_byllm():
    offenders = [a for a in _arrows("", ("jaclang", "byllm")) if not a.startswith("generator.capture.byllm_api ")]
    assert offenders == []
