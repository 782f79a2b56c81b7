"""What provider libraries print: keys redacted, stdout left to the command.

Three guards, each idempotent and cheap once installed:

* :func:`install_log_redaction` wraps the ``logging`` record factory so every
  record's message (and its traceback text) goes through
  :func:`generator.store.redact.scrub` when it is created: the values of the
  environment's key variables and key-shaped strings never reach a handler,
  whichever library logged them (``openai``, ``LiteLLM``, ``httpx``...).
* :func:`quiet_provider_libraries` sends byllm's loguru output through
  ``logging`` (so the same redaction and the application's levels apply)
  instead of loguru's own stderr handler, scrubs loguru messages for any other
  sink, and turns off litellm's "Give Feedback / Get Help" banners, which it
  prints on stdout.  The teacher calls it before each request; the capture
  plugin before each ``by llm()`` call.
* :func:`json_stdout` is for ``--json`` commands: while it is open anything
  written to standard output (Python's ``sys.stdout`` and file descriptor 1,
  so native code too) goes to standard error, and the one JSON object the
  command emits is written to the real stdout, redacted, when it closes.

>>> import io, contextlib
>>> buf = io.StringIO()
>>> with contextlib.redirect_stdout(buf):
...     with json_stdout(True) as emit:
...         print("a library banner")
...         emit({"ok": True})
>>> buf.getvalue()
'{"ok": true}\\n'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from generator.store.redact import scrub

__all__ = ["install_log_redaction", "json_stdout", "quiet_provider_libraries"]

_lock = threading.Lock()
_factory_installed = False
_loguru_done = False
_litellm_done = False


def _scrub_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is the handler's business
        message = None
    if message is not None:
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        clean = scrub(text)
        if clean != text:
            record.exc_text = clean  # formatters use exc_text when it is set
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


def install_log_redaction() -> None:
    """Scrub every ``logging`` record as it is created (chains to any earlier record factory)."""
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _scrub_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True


_LOGURU_LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "SUCCESS": logging.INFO,
                  "WARNING": logging.WARNING, "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


def _loguru_to_logging(message: Any) -> None:
    record = message.record
    level = _LOGURU_LEVELS.get(record["level"].name, record["level"].no)
    logger = logging.getLogger(record["name"] or "loguru")
    if logger.isEnabledFor(level):
        logger.log(level, "%s", record["message"])


def _scrub_loguru(record: dict[str, Any]) -> None:
    record["message"] = scrub(record["message"])


def quiet_provider_libraries() -> None:
    """Route byllm's loguru output through ``logging`` and silence litellm's stdout banners."""
    global _loguru_done, _litellm_done
    install_log_redaction()
    if _loguru_done and _litellm_done:
        return
    with _lock:
        if not _loguru_done:
            try:
                from loguru import logger
            except ImportError:
                _loguru_done = True
            else:
                logger.configure(patcher=_scrub_loguru)  # any sink an application added sees scrubbed text
                with contextlib.suppress(ValueError):
                    logger.remove(0)  # loguru's default stderr handler (absent if the app removed it)
                    logger.add(_loguru_to_logging, level="DEBUG", format="{message}")
                _loguru_done = True
        litellm = sys.modules.get("litellm")
        if litellm is not None and not _litellm_done:
            litellm.suppress_debug_info = True  # "Give Feedback / Get Help" banners on stdout
            _litellm_done = True


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None


@contextlib.contextmanager
def json_stdout(enabled: bool = True) -> Iterator[Callable[[Any], None]]:
    """Keep stdout for one JSON object: ``with json_stdout(args.json) as emit: ...; emit(obj)``.

    When ``enabled`` is false, ``emit`` just prints the object.  When true,
    everything else written to stdout while the block runs lands on stderr;
    the object given to ``emit`` (the last one, if it is called twice) is
    written to stdout, redacted, when the block ends, even if it raised.
    """
    if not enabled:
        yield lambda obj: print(scrub(json.dumps(obj, default=str)), flush=True)
        return
    pending: list[Any] = []
    sys.stdout.flush()
    out_fd, err_fd = _fileno(sys.stdout), _fileno(sys.stderr)
    saved_fd = None
    if out_fd is not None and err_fd is not None and out_fd != err_fd:
        saved_fd = os.dup(out_fd)
        os.dup2(err_fd, out_fd)  # native writes to fd 1 go to stderr
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield pending.append
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        if saved_fd is not None:
            os.dup2(saved_fd, out_fd)  # type: ignore[arg-type]
            os.close(saved_fd)
        if pending:
            print(scrub(json.dumps(pending[-1], default=str)), flush=True)
