"""Everything the project touches of jaclang and byllm, in one place.

This is the only module of the project that imports ``jaclang`` or ``byllm``
(``tests/test_layers.py`` checks it).  jaclang imports the capture plugin
while jaclang itself is still loading, so nothing here imports either at
module level: the running runtime is looked up in ``sys.modules``.

What is used, and why:

* the plugin manager (``jaclang.jac0core.runtime.plugin_manager``): its
  public ``is_registered``/``register``, ``hook.<name>.get_hookimpls()``, and
  ``HookImpl.function``/``argnames`` to call the implementations below ours;
* the order of a hook's implementations (``_hookimpls``, the one private
  attribute: the manager has no public way to move a plugin to the front, and the
  capture hook must wrap byllm's whatever order the entry points load in);
* ``byllm.schema.json_to_instance`` to turn a local answer into the return type;
* ``byllm.llm.{Model, BaseLLM, MockLLM}`` dispatch methods, wrapped once to
  count tokens (byllm keeps no usage for non-streaming typed calls).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

RUNTIME_MODULE = "jaclang.jac0core.runtime"
HELPERS_MODULE = "jaclang.jac0core.helpers"
_IMPL_MARK = "_jac_hookimpl"  # what jaclang's HookimplMarker sets; used only before jaclang is loaded

#: byllm's dispatch methods the token meter wraps: (class name, method, where usage is read)
METERED_METHODS: tuple[tuple[str, str, str], ...] = (
    ("Model", "model_call_no_stream", "response"),
    ("Model", "model_call_no_stream_async", "response"),
    ("BaseLLM", "dispatch_no_streaming", "result"),
    ("MockLLM", "dispatch_no_streaming", "result"),
    ("BaseLLM", "adispatch_no_streaming", "result"),
)


def load_jaclang() -> None:
    """Import jaclang (which loads the entry-point plugins, the capture plugin included)."""
    import jaclang  # noqa: F401


def runtime() -> Any:
    """jaclang's runtime module once jaclang is loaded, else None."""
    return sys.modules.get(RUNTIME_MODULE)


def hookimpl(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn`` as a jaclang hook implementation (works before jaclang is loaded)."""
    rt = runtime()
    if rt is not None:
        return rt.hookimpl(fn)
    setattr(fn, _IMPL_MARK, True)
    return fn


def is_registered(plugin: Any) -> bool:
    rt = runtime()
    return rt is not None and bool(rt.plugin_manager.is_registered(plugin))


def put_last(hooks: tuple[str, ...], plugin: Any) -> None:
    """Move ``plugin``'s implementations of ``hooks`` to the end of the list (= called first)."""
    rt = runtime()
    if rt is None:
        return
    for name in hooks:
        caller = getattr(rt.plugin_manager.hook, name, None)
        impls = getattr(caller, "_hookimpls", None)
        if not impls:
            continue
        ours = [h for h in impls if h.plugin is plugin]
        if ours and impls[-len(ours) :] != ours:
            caller._hookimpls = [h for h in impls if h.plugin is not plugin] + ours


def call_below(hook: str, plugin: Any, **kwargs: Any) -> Any:
    """Call the implementations of ``hook`` that run after ``plugin``'s (first non-None wins)."""
    caller = getattr(sys.modules[RUNTIME_MODULE].plugin_manager.hook, hook)
    impls = caller.get_hookimpls()
    mine = max((i for i, h in enumerate(impls) if h.plugin is plugin), default=len(impls))
    for impl in reversed(impls[:mine]):
        names = impl.argnames  # HookImpl's public fields; as jaclang's own caller passes them
        result = impl.function(**(kwargs if names is None else {n: kwargs[n] for n in names if n in kwargs}))
        if result is not None:
            return result
    return None


def json_to_instance(value: Any, resp_type: Any) -> Any:
    from byllm.schema import json_to_instance as convert

    return convert(value, resp_type)


def wrap_dispatch(wrap: Callable[[Callable[..., Any], str], Callable[..., Any]]) -> None:
    """Replace each of :data:`METERED_METHODS` by ``wrap(original, where)``, once.

    byllm has no usage hook for non-streaming typed calls, so this is the one
    place the project patches byllm's classes; a wrapper marked
    ``_forge_metered`` is never wrapped again.
    """
    import byllm.llm

    for cls_name, name, where in METERED_METHODS:
        cls = getattr(byllm.llm, cls_name)
        original = cls.__dict__.get(name)
        if original is None or getattr(original, "_forge_metered", False):
            continue
        setattr(cls, name, wrap(original, where))


def register_model_plugins_first(own_module: str, hooks: tuple[str, ...]) -> None:
    """Register the other plugins that implement ``hooks`` (byllm) before this package's.

    jaclang registers entry-point plugins in discovery order and calls the last
    one first; loading the model-calling plugins now guarantees the capture
    hook wraps them whatever order the entry points come in.  Disabled plugins
    stay disabled; failures are left for jaclang to report.  Raises on
    unexpected runtime shapes (the caller logs).
    """
    rt = runtime()
    helpers = sys.modules.get(HELPERS_MODULE)
    if rt is None:
        return
    from importlib.metadata import entry_points

    disabled = list(helpers.get_disabled_plugins()) if helpers is not None else []
    if "*" in disabled:
        return
    manager = rt.plugin_manager
    for ep in entry_points(group="jac"):
        if ep.value.split(":")[0] == own_module:
            continue
        dist = getattr(getattr(ep, "dist", None), "name", "unknown")
        if dist + ":*" in disabled or f"{dist}:{ep.name}" in disabled or ep.name in disabled:
            continue
        try:
            plugin = ep.load()
        except Exception:
            continue
        if manager.is_registered(plugin) or not any(hasattr(plugin, h) for h in hooks):
            continue
        manager.register(plugin, name=ep.name)
        facade = getattr(helpers, "DistFacade", None)
        if facade is not None and ep.dist is not None:
            manager._plugin_distinfo.append((plugin, facade(ep.dist)))


def model_class() -> type:
    """byllm's ``Model`` (what a ``by llm()`` function calls), for the teacher to subclass."""
    from byllm.llm import Model

    return Model


def output_conversion_error() -> type[BaseException]:
    """The exception byllm raises when a model's answer does not parse into the return type."""
    from byllm.lib import OutputConversionError

    return OutputConversionError
