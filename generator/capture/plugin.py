"""The jaclang plugin: ``call_llm`` / ``acall_llm`` hooks that wrap byllm's, and its load order."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from typing import Any

from generator.capture import byllm_api, metering
from generator.capture.call import begin, finish, spot_check_later
from generator.capture.describe import NOT_ANSWERED
from generator.capture.transport import observe_unless_observed
from generator.guards.output import quiet_provider_libraries

log = logging.getLogger(__name__)

#: the module named by the ``jac`` entry point (``generator.capture:CapturePlugin``)
ENTRY_MODULE = "generator.capture"
HOOKS = ("call_llm", "acall_llm")


class CapturePlugin:
    """The jaclang plugin: thin hooks over the capture functions."""

    @staticmethod
    @byllm_api.hookimpl
    def call_llm(model: Any, mt_run: Any) -> Any:
        quiet_provider_libraries()  # keys out of byllm's/litellm's output, no stdout banners
        return _capture_sync(model, mt_run)

    @staticmethod
    @byllm_api.hookimpl
    async def acall_llm(model: Any, mt_run: Any) -> Any:
        quiet_provider_libraries()
        return await _capture_async(model, mt_run)


def install() -> bool:
    """Make sure the plugin is active in this process (imports jaclang); True when it is.

    jaclang loads the plugin from its entry point on import; this also moves
    the plugin's hooks in front of byllm's if some other plugin registered
    later.  Idempotent and cheap after the first call.
    """
    byllm_api.load_jaclang()
    if byllm_api.runtime() is None:
        return False
    if not byllm_api.is_registered(CapturePlugin):
        log.warning(
            "the capture plugin is not registered (disabled via JAC_DISABLED_PLUGINS or "
            "[plugins].disabled?); by llm() calls will not be recorded"
        )
        return False
    ensure_outermost()
    return True


def ensure_outermost() -> None:
    """Put this plugin's hook implementations last, i.e. called first.

    jaclang calls hook implementations in reverse registration order and the
    first non-None answer wins, so the capture hook must sit after byllm's.
    """
    byllm_api.put_last(HOOKS, CapturePlugin)


def resolve() -> type[CapturePlugin]:
    """The plugin class, as jaclang's entry-point loader fetches it.

    jaclang fetches ``CapturePlugin`` from the entry point right before
    registering it; registering the model-calling plugins first at that moment
    (even when this package was imported before jaclang) makes the capture hook
    always wrap byllm's.
    """
    if byllm_api.runtime() is not None and not byllm_api.is_registered(CapturePlugin):
        try:
            byllm_api.register_model_plugins_first(ENTRY_MODULE, HOOKS)
        except Exception:
            log.warning("capture: could not order jac plugins; call install() before running Jac code", exc_info=True)
    return CapturePlugin


def _capture_sync(model: Any, mt_run: Any) -> Any:
    call = begin(model, mt_run)
    if call is not None and call.answer is not NOT_ANSWERED:
        spot_check_later(call, functools.partial(byllm_api.call_below, "call_llm", CapturePlugin,
                                                 model=model, mt_run=mt_run))
        return call.answer
    meter_token = metering.current_usage.set(metering.Usage()) if call is not None else None
    start = time.perf_counter()
    with observe_unless_observed() as tlog:  # inside a facade attempt the facade records the requests
        try:
            result = byllm_api.call_below("call_llm", CapturePlugin, model=model, mt_run=mt_run)
        except BaseException as exc:
            finish(call, mt_run, None, exc, start, meter_token, tlog)
            raise
        finish(call, mt_run, result, None, start, meter_token, tlog)
    return result


async def _capture_async(model: Any, mt_run: Any) -> Any:
    call = begin(model, mt_run)
    if call is not None and call.answer is not NOT_ANSWERED:
        return call.answer
    meter_token = metering.current_usage.set(metering.Usage()) if call is not None else None
    start = time.perf_counter()
    with observe_unless_observed() as tlog:
        try:
            result = byllm_api.call_below("acall_llm", CapturePlugin, model=model, mt_run=mt_run)
            if inspect.isawaitable(result):
                result = await result
        except BaseException as exc:
            finish(call, mt_run, None, exc, start, meter_token, tlog)
            raise
        finish(call, mt_run, result, None, start, meter_token, tlog)
    return result
