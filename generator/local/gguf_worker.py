"""GGUF students served from a worker process, so a native crash cannot take the game down.

Size: over 400 lines on purpose. Both ends of the pipe (the parent's client
and the worker's loop) share one message protocol and its timeouts.

The runtime is ``ctransformers`` (0.2.27, a 2023 llama.cpp build wrapped
with ctypes).  It runs in a child interpreter (``python -m generator.local.gguf_worker``); the parent
talks to it over a pipe, one request at a time:

* the model loads once per worker (at start), not per call;
* every request has a timeout; a worker that hangs is killed;
* a worker that dies (segfault, ``abort``, out of memory) costs the request in
  flight a :class:`~generator.errors.BackendError`, and a fresh worker is
  started at once, so the next request is served by it;
* a missing runtime or a bad file is a :class:`~generator.errors.ModelLoadError`
  naming the file and what to do.

Decoding is ours, not the runtime's: the worker feeds token ids to the model
and reads the logits, so the level grammar
(:class:`~generator.local.decoding.LevelGrammar`) masks them exactly as it
does for the torch student, and runs of forced tokens go through the model in
one evaluation.  The runtime's own tokenizer is never used: prompts are
tokenized with the student's ``tokenizer.json`` (beside the GGUF file) or,
without one, with a tokenizer rebuilt from the vocabulary the GGUF file holds.

The export (:func:`generator.local.gguf.export_gguf`) is not loaded as it
is: a character vocabulary has no merges, and both runtimes refuse a ``gpt2``
vocabulary without them; ctransformers' 2023 llama.cpp also wants token
scores, the vocabulary as raw text (it looks up ``"\\n"`` itself and
segfaults when it is missing) and ``output.weight`` spelt out for tied
embeddings.  The worker loads a rewritten temporary copy
(:func:`runtime_gguf`); tensors are copied unchanged.  A second runtime,
``runtime="llama_cpp"`` (llama-cpp-python, a current llama.cpp; no wheel, it
is built from source), needs only the placeholder merge.

>>> with GGUFWorker("models/level/v3/student-q8_0.gguf") as worker:  # doctest: +SKIP
...     out = worker.generate({"spec": spec_dict}, seed=7)
>>> out.result["rows"][0], out.mean_logprob  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from generator.errors import BackendError, ModelLoadError
from generator.local.codec import (
    LEVEL_FORM,
    ROW_PREFIX_LEN,
    encode_prompt,
    is_level_site,
    spec_from_args,
)
from generator.local.prompting import byte_decoder
from generator.local.student import LEVEL_TEMPERATURE, StudentOutput

if TYPE_CHECKING:
    from generator.backends.base import BackendOutput, BackendRequest

__all__ = ["GGUF_ARTEFACT", "GGUF_RUNTIMES", "GGUFBackend", "GGUFWorker", "runtime_available", "runtime_gguf"]

log = logging.getLogger(__name__)

#: The quantized GGUF artefact a promoted level student is served from (in its version folder).
GGUF_ARTEFACT: Final = "student-q8_0.gguf"
#: Runtimes a worker can serve a GGUF file with.
GGUF_RUNTIMES: Final = ("ctransformers", "llama_cpp")
_INSTALL_HINT: Final = {
    "ctransformers": "GGUF serving needs ctransformers: pip install 'dungeon-forge[gguf]' (ctransformers==0.2.27)",
    "llama_cpp": "runtime 'llama_cpp' needs llama-cpp-python (built from source: pip install llama-cpp-python)",
}
#: Placeholder merge for runtimes that insist on a merge list (their tokenizer is never used).
_PLACEHOLDER_MERGE: Final = "</s> </s>"
_NORMAL: Final = 1  # gguf.TokenType.NORMAL


def runtime_available(runtime: str = "ctransformers") -> bool:
    """Whether ``runtime`` is installed (checked without importing it)."""
    return runtime in GGUF_RUNTIMES and importlib.util.find_spec(runtime) is not None


# ------------------------------------------------------------ GGUF files


def _read_gguf(path: Path) -> Any:
    """A ``gguf.GGUFReader`` for ``path``, or ModelLoadError saying why the file is unreadable."""
    try:
        import gguf
    except ImportError as exc:  # pragma: no cover - gguf comes with the train/gguf extras
        raise ModelLoadError(f"reading {path} needs the gguf package: pip install gguf ({exc})") from exc
    _check_header(path)
    try:
        reader = gguf.GGUFReader(str(path))
        for t in reader.tensors:  # touch every tensor so a truncated file fails here, not in native code
            if t.data.nbytes != int(t.n_bytes):
                raise ValueError(f"tensor {t.name} is truncated")
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable GGUF file ({exc}); re-export it") from exc
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ModelLoadError(f"{path} holds a {arch!r} model; the GGUF worker serves llama-architecture students")
    return reader


def _check_header(path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"GGUF student {path} does not exist; export it (generator.local.gguf) or roll back")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ModelLoadError(f"{path} is not a GGUF file (starts with {magic!r}); re-export it")


def _field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def _raw_tokens(reader: Any) -> list[str]:
    """The token list as text: GPT-2 byte symbols of a ``gpt2`` vocabulary decoded back to characters."""
    tokens = list(_field(reader, "tokenizer.ggml.tokens") or [])
    types = list(_field(reader, "tokenizer.ggml.token_type") or [_NORMAL] * len(tokens))
    if _field(reader, "tokenizer.ggml.model") != "gpt2":
        return tokens
    table = byte_decoder()
    out = []
    for text, kind in zip(tokens, types, strict=False):
        if kind != _NORMAL or any(c not in table for c in text):
            out.append(text)
        else:
            out.append(bytes(table[c] for c in text).decode("utf-8", errors="replace"))
    return out


def runtime_gguf(src: str | Path, dst: str | Path, runtime: str = "ctransformers") -> Path:
    """Rewrite ``src`` (an :func:`generator.local.gguf.export_gguf` file) into a copy ``runtime`` loads.

    Both runtimes refuse a ``gpt2`` vocabulary without a merge list, which a
    character tokenizer does not have: a placeholder merge is added (their
    tokenizers are never used).  For ``ctransformers`` (a 2023 llama.cpp) also
    zero token scores, the vocabulary as raw text instead of GPT-2 byte
    symbols, and ``output.weight`` spelt out when the embeddings are tied.
    Tensors are copied as they are (same quantization), so the logits are the same.
    """
    import gguf

    src, dst = Path(src), Path(dst)
    legacy = runtime == "ctransformers"
    reader = _read_gguf(src)
    writer = gguf.GGUFWriter(str(dst), "llama")
    skip = {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count", "general.architecture"}
    if legacy:
        skip |= {"tokenizer.ggml.merges", "tokenizer.ggml.scores"}
    tokens = _raw_tokens(reader) if legacy else list(_field(reader, "tokenizer.ggml.tokens") or [])
    for name, f in reader.fields.items():
        if name in skip:
            continue
        value = tokens if name == "tokenizer.ggml.tokens" else f.contents()
        vtype = f.types[0]
        writer.add_key_value(name, value, vtype, f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None)
    if legacy:
        writer.add_token_scores([0.0] * len(tokens))
    if legacy or "tokenizer.ggml.merges" not in reader.fields:
        writer.add_token_merges([_PLACEHOLDER_MERGE])
    names = {t.name for t in reader.tensors}
    for t in reader.tensors:
        writer.add_tensor(t.name, t.data, raw_shape=t.data.shape, raw_dtype=t.tensor_type)
    if legacy and "output.weight" not in names:  # tied embeddings: this runtime wants the output matrix
        emb = next(t for t in reader.tensors if t.name == "token_embd.weight")
        writer.add_tensor("output.weight", emb.data, raw_shape=emb.data.shape, raw_dtype=emb.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


# ------------------------------------------------------------ inside the worker


class _LlamaCppRuntime:
    """A current llama.cpp through llama-cpp-python: reads the export as written."""

    def __init__(self, path: Path, *, context_length: int, threads: int) -> None:
        from llama_cpp import Llama

        try:
            self.llm = Llama(model_path=str(path), n_ctx=context_length, n_threads=threads, n_threads_batch=threads,
                             n_batch=512, logits_all=False, verbose=False)
        except Exception as exc:
            raise ModelLoadError(f"llama.cpp could not load {path}: {exc}") from exc
        self.context_length = int(self.llm.n_ctx())
        self.vocab_size = int(self.llm.n_vocab())

    def forward(self, ids: list[int], n_past: int) -> np.ndarray:
        if n_past + len(ids) > self.context_length:
            raise BackendError(f"{n_past + len(ids)} tokens exceed the worker's context of {self.context_length}")
        self.llm.n_tokens = n_past  # eval() drops the cache after n_tokens and appends
        self.llm.eval(ids)
        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.vocab_size,)).astype(np.float64)


class _Runtime:
    """ctransformers' llama.cpp through its C entry points: evaluate ids, read the last logits."""

    def __init__(self, path: Path, *, context_length: int, threads: int) -> None:
        import ctypes

        from ctransformers.llm import Config, load_library

        self._ctypes = ctypes
        self.lib = load_library(None)
        self.llm = self.lib.ctransformers_llm_create(str(path).encode(), b"gguf",
                                                     Config(context_length=context_length).to_struct())
        if not self.llm:
            raise ModelLoadError(f"ctransformers could not load {path} (its llama.cpp rejected the file)")
        self.context_length = int(self.lib.ctransformers_llm_context_length(self.llm))
        self.vocab_size = int(self.lib.ctransformers_llm_vocab_size(self.llm))
        self.threads = threads

    def forward(self, ids: list[int], n_past: int) -> np.ndarray:
        if n_past + len(ids) > self.context_length:
            raise BackendError(f"{n_past + len(ids)} tokens exceed the worker's context of {self.context_length}")
        arr = (self._ctypes.c_int * len(ids))(*ids)
        if not self.lib.ctransformers_llm_batch_eval(self.llm, arr, len(ids), n_past, 512, self.threads):
            raise BackendError("the GGUF runtime failed to evaluate tokens")
        n = int(self.lib.ctransformers_llm_logits_size(self.llm))
        return np.ctypeslib.as_array(self.lib.ctransformers_llm_logits_data(self.llm), shape=(n,)).astype(np.float64)


def _load_tokenizer(tokenizer_path: str | None, tokens: list[str]) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers

    if tokenizer_path:
        try:
            return Tokenizer.from_file(tokenizer_path)
        except Exception as exc:
            raise ModelLoadError(f"{tokenizer_path} is unreadable: {exc}") from exc
    vocab: dict[str, int] = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>" if "<unk>" in vocab else None))
    tok.pre_tokenizer = pre_tokenizers.Split("\n", behavior="isolated")
    return tok


class _Served:
    """What a worker holds: the runtime, the tokenizer, the token strings."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        started = time.perf_counter()
        if cfg["runtime"] not in GGUF_RUNTIMES:
            raise ModelLoadError(f"GGUF runtime {cfg['runtime']!r} is unknown; use one of {', '.join(GGUF_RUNTIMES)}")
        if importlib.util.find_spec(cfg["runtime"]) is None:
            raise ModelLoadError(_INSTALL_HINT[cfg["runtime"]])
        src = Path(cfg["path"])
        reader = _read_gguf(src)
        self.tokens = _raw_tokens(reader)
        if not self.tokens:
            raise ModelLoadError(f"{src} has no tokenizer.ggml.tokens; re-export it with generator.local.gguf")
        self.eos_id = _field(reader, "tokenizer.ggml.eos_token_id")
        self.bos_id = _field(reader, "tokenizer.ggml.bos_token_id")
        if self.eos_id is None:
            raise ModelLoadError(f"{src} names no end-of-sequence token (tokenizer.ggml.eos_token_id)")
        add_bos = _field(reader, "tokenizer.ggml.add_bos_token")
        template = _field(reader, "tokenizer.chat_template")
        n_ctx_train = int(_field(reader, "llama.context_length") or 2048)
        merges = "tokenizer.ggml.merges" in reader.fields
        del reader
        self.tokenizer = _load_tokenizer(cfg.get("tokenizer"), self.tokens)
        from generator.local.prompting import PromptFormat

        # The prompt as the student was trained on it: its chat template and BOS rule, from the file.
        self.format = PromptFormat(
            bos_id=None if self.bos_id is None else int(self.bos_id), eos_id=int(self.eos_id),
            pad_id=int(self.eos_id), add_bos=self.bos_id is not None and (add_bos is None or bool(add_bos)),
            chat_template=template if isinstance(template, str) and template else None,
            bos_token="" if self.bos_id is None else self.tokens[int(self.bos_id)],
            eos_token=self.tokens[int(self.eos_id)])
        self.char_to_id: dict[str, int] = {}
        for i, t in enumerate(self.tokens):
            if len(t) == 1:
                self.char_to_id.setdefault(t, i)
        self.runtime_name = cfg["runtime"]
        # the parent owns this folder and removes it even when the worker is killed
        self.tmp = cfg.get("tmp") or tempfile.mkdtemp(prefix="forge-gguf-")
        ctx = int(cfg.get("context_length") or min(n_ctx_train, 4096))
        threads = int(cfg.get("threads") or 1)
        self.runtime: _Runtime | _LlamaCppRuntime
        if self.runtime_name == "llama_cpp":
            path = src if merges else runtime_gguf(src, Path(self.tmp) / "llama_cpp.gguf", "llama_cpp")
            self.runtime = _LlamaCppRuntime(path, context_length=ctx, threads=threads)
        else:
            if "\n" not in self.char_to_id:  # its loader looks the newline up unchecked and segfaults
                raise ModelLoadError(f"{src}: the vocabulary has no newline token, which ctransformers' llama.cpp "
                                     "cannot load; serve this student with the torch backend")
            path = runtime_gguf(src, Path(self.tmp) / "ctransformers.gguf", "ctransformers")
            self.runtime = _Runtime(path, context_length=ctx, threads=threads)
        self.load_ms = (time.perf_counter() - started) * 1000.0

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def info(self) -> dict[str, Any]:
        return {"runtime": self.runtime_name, "context_length": self.runtime.context_length,
                "vocab_size": self.runtime.vocab_size, "load_ms": round(self.load_ms, 1), "pid": os.getpid()}

    def prompt_ids(self, site: str, args: dict[str, Any]) -> list[int]:
        return self.format.prompt_ids(self.tokenizer, encode_prompt(site, args))

    def sample(self, req: dict[str, Any]) -> dict[str, Any]:
        """One completion for ``req`` (site, args, seed, temperature, masked); raw text and log-probs."""
        from generator.local.decoding import LevelGrammar, masked_completion

        site, args = req["site"], req["args"]
        level = is_level_site(site)
        prompt = self.prompt_ids(site, args)
        grammar = None
        if level:
            spec = spec_from_args(args)
            budget = spec["height"] * (ROW_PREFIX_LEN + spec["width"] + 1) + 1
            grammar = LevelGrammar(spec) if req.get("masked", True) else None
        else:
            budget = 1024
        budget = min(int(req.get("max_new_tokens") or budget), self.runtime.context_length - len(prompt))
        if budget <= 0:
            raise BackendError(f"prompt of {len(prompt)} tokens leaves no room in the worker's context")
        crash_after = req.get("crash_after_tokens")

        def before_step(tokens: int) -> None:
            if crash_after is not None and tokens >= crash_after:
                os._exit(70)  # test hook: die like a native crash, mid-generation

        n_past = 0

        def forward(ids: list[int]) -> np.ndarray:
            nonlocal n_past
            logits = self.runtime.forward(ids, n_past)
            n_past += len(ids)
            return logits

        try:
            out = masked_completion(forward, prompt, token_strings=self.tokens, eos_id=int(self.eos_id),
                                    rng=np.random.default_rng(int(req.get("seed", 0)) % 2**64),
                                    max_new_tokens=budget, temperature=float(req.get("temperature", 1.0)),
                                    grammar=grammar, stop=None if level else "\n", before_step=before_step)
        except ValueError as exc:  # the vocabulary lacks a character the grammar needs
            raise BackendError(str(exc)) from None
        return {"text": out.text, "token_ids": out.token_ids, "tokens": len(out.token_ids),
                "mean_logprob": out.mean_logprob, "forced_tokens": out.forced_tokens,
                "prompt_tokens": len(prompt), "stopped": out.stopped}


def _worker_main(conn: Any, cfg: dict[str, Any]) -> None:
    """The worker process: load once, then answer requests until told to stop or the parent goes."""
    logging.basicConfig(level=logging.WARNING)
    if cfg.get("test_hooks") and cfg.get("crash_on_load"):
        import ctypes

        ctypes.string_at(0)  # test hook: a real segmentation fault while loading
    try:
        served = _Served(cfg)
    except ModelLoadError as exc:
        conn.send(("error", "ModelLoadError", str(exc)))
        return
    except Exception as exc:
        conn.send(("error", "ModelLoadError", f"{cfg['path']}: {type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", served.info()))
    hooks = bool(cfg.get("test_hooks"))
    try:
        while True:
            try:
                op, req = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if op == "stop":
                return
            try:
                if not hooks:
                    req.pop("crash_after_tokens", None)
                    req.pop("hang_s", None)
                if req.get("hang_s"):
                    time.sleep(float(req["hang_s"]))
                n = int(req.get("n", 1))
                outs = []
                for i in range(n):
                    started = time.perf_counter()
                    out = served.sample({**req, "seed": int(req.get("seed", 0)) * 1009 + i})
                    out["latency_ms"] = (time.perf_counter() - started) * 1000.0
                    outs.append(out)
                conn.send(("ok", outs))
            except BackendError as exc:
                conn.send(("error", "BackendError", str(exc)))
            except Exception as exc:
                conn.send(("error", "BackendError", f"{type(exc).__name__}: {exc}"))
    finally:
        served.close()


# ------------------------------------------------------------ the parent's side


def _kill(proc: Any) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def _wait(proc: Any, seconds: float) -> int | None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        return proc.wait(seconds)
    return proc.poll()


class GGUFWorker:
    """A GGUF student loaded in a child process; :meth:`generate` answers like :class:`LocalStudent`.

    ``timeout_s`` bounds each request (a worker that overruns it is killed and
    replaced); ``load_timeout_s`` bounds loading.  After a crash a new worker
    starts at once; ``max_restarts`` crashes in a row without a served request
    in between make the worker give up (every call then raises
    :class:`~generator.errors.BackendError` until :meth:`restart`).
    ``tokenizer``: the student's ``tokenizer.json`` (default: the one beside
    the GGUF file, else one rebuilt from the file's vocabulary).
    """

    def __init__(self, gguf_path: str | Path, *, site: str = LEVEL_FORM, runtime: str = "ctransformers",
                 tokenizer: str | Path | None = None, threads: int = 1, context_length: int | None = None,
                 timeout_s: float = 30.0, load_timeout_s: float = 120.0, max_restarts: int = 3,
                 version: str | None = None, test_hooks: bool = False, _crash_on_load: bool = False) -> None:
        self.path = Path(gguf_path)
        self.site = site
        self.version = version or self.path.parent.name or self.path.stem
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
        self.max_restarts = max_restarts
        if runtime not in GGUF_RUNTIMES:
            raise ModelLoadError(f"GGUF runtime {runtime!r} is unknown; use one of {', '.join(GGUF_RUNTIMES)}")
        if not runtime_available(runtime):
            raise ModelLoadError(_INSTALL_HINT[runtime])
        _check_header(self.path)  # cheap checks here; the worker reads the whole file
        if tokenizer is None and (self.path.parent / "tokenizer.json").is_file():
            tokenizer = self.path.parent / "tokenizer.json"
        self._cfg = {"path": str(self.path), "runtime": runtime, "tokenizer": str(tokenizer) if tokenizer else None,
                     "threads": threads, "context_length": context_length, "test_hooks": test_hooks,
                     "crash_on_load": _crash_on_load}
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self._ready = False
        self._fault: dict[str, Any] = {}
        self._closed = False
        self.info: dict[str, Any] = {}
        self.restarts = 0  #: workers started after the first one
        self.crashes = 0  #: crashes in a row since the last served request
        self._finalizer = weakref.finalize(self, GGUFWorker._shutdown, {"proc": None, "conn": None})
        with self._lock:
            self._spawn()
            self._wait_ready(time.monotonic() + load_timeout_s)  # a bad file fails here, with its reason

    # -- lifecycle -------------------------------------------------------

    @staticmethod
    def _shutdown(state: dict[str, Any]) -> None:
        conn, proc = state.get("conn"), state.get("proc")
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.send(("stop", {}))
            with contextlib.suppress(Exception):
                conn.close()
        if proc is not None:
            _wait(proc, 2)
            _kill(proc)
        if state.get("tmp"):
            shutil.rmtree(state["tmp"], ignore_errors=True)

    def _spawn(self) -> None:
        self._cfg["tmp"] = tempfile.mkdtemp(prefix="forge-gguf-")  # the runtime's copy of the file goes here
        # A plain child interpreter (not multiprocessing's spawn, which re-runs the caller's
        # __main__): it imports this module and talks over one end of a socket pair.
        parent, child = multiprocessing.Pipe()
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        cmd = [sys.executable, "-m", "generator.local.gguf_worker", "--fd", str(child.fileno()),
               "--config", json.dumps(self._cfg)]
        # stdout goes to our stderr: native code may print, and a CLI's --json stdout must stay clean
        proc = subprocess.Popen(cmd, pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL, stdout=2)
        child.close()
        self._proc, self._conn, self._ready = proc, parent, False
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, GGUFWorker._shutdown,
                                           {"proc": proc, "conn": parent, "tmp": self._cfg["tmp"]})

    def _discard(self) -> None:
        _kill(self._proc)
        with contextlib.suppress(Exception):
            self._conn.close()
        shutil.rmtree(self._cfg["tmp"], ignore_errors=True)
        self._proc = self._conn = None
        self._ready = False

    def _wait_ready(self, deadline: float) -> None:
        if self._ready:
            return
        msg = self._receive(deadline, loading=True)
        if msg[0] == "ready":
            self.info = msg[1]
            self._ready = True
            log.info("GGUF worker %s serving %s (%s)", self.info.get("pid"), self.path, self.info)
            return
        self._discard()
        raise ModelLoadError(msg[2])

    def _receive(self, deadline: float, *, loading: bool = False) -> tuple[Any, ...]:
        what = "loading" if loading else "generating"
        try:
            if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                self._discard()
                raise (ModelLoadError if loading else BackendError)(
                    f"GGUF worker for {self.path} timed out while {what} and was killed")
            return self._conn.recv()
        except (EOFError, OSError, ConnectionError):
            code = _wait(self._proc, 5)
            self._discard()
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            if loading:
                raise ModelLoadError(f"GGUF worker {how} while loading {self.path}: the runtime's native code "
                                 "crashed on it (its messages are on stderr); re-export the file or roll the "
                                 "site back") from None
            raise BackendError(f"GGUF worker {how} while {what} ({self.path})") from None

    def restart(self) -> None:
        """Replace the worker with a fresh one (also after it gave up)."""
        with self._lock:
            self._discard()
            self._closed = False
            self.crashes = 0
            self.restarts += 1
            self._spawn()
            self._wait_ready(time.monotonic() + self.load_timeout_s)

    def close(self) -> None:
        """Stop the worker (idempotent)."""
        with self._lock:
            self._closed = True
            self._finalizer()
            self._proc = self._conn = None
            self._ready = False

    def __enter__(self) -> GGUFWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def inject_fault(self, *, crash_after_tokens: int | None = None, hang_s: float | None = None) -> None:
        """Test hook: the next request crashes the worker (``os._exit``) or hangs; needs ``test_hooks=True``."""
        if not self._cfg["test_hooks"]:
            raise BackendError("inject_fault needs GGUFWorker(..., test_hooks=True)")
        fault = {"crash_after_tokens": crash_after_tokens, "hang_s": hang_s}
        self._fault = {k: v for k, v in fault.items() if v is not None}

    # -- requests --------------------------------------------------------

    def _request(self, req: dict[str, Any], timeout_s: float | None) -> list[dict[str, Any]]:
        with self._lock:
            if self._closed:
                raise BackendError(f"GGUF worker for {self.path} is closed")
            if self._proc is None:
                if self.crashes > self.max_restarts:
                    raise BackendError(f"GGUF worker for {self.path} crashed {self.crashes} times in a row; "
                                       "gave up (call restart() or roll the site back)")
                self.restarts += 1
                self._spawn()
            req = {**req, **self._fault}
            self._fault = {}
            try:
                self._wait_ready(time.monotonic() + self.load_timeout_s)
                deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
                self._conn.send(("generate", req))
                msg = self._receive(deadline)
            except (BackendError, ModelLoadError) as exc:
                self.crashes += 1
                if self.crashes <= self.max_restarts:
                    self.restarts += 1
                    self._spawn()  # the replacement loads while the caller handles the error
                    then = "a new worker is starting"
                else:
                    then = f"giving up after {self.crashes} crashes in a row (restart() to try again)"
                raise BackendError(f"{exc}; {then}") from exc
            if msg[0] == "ok":
                self.crashes = 0
                return msg[1]
            raise BackendError(f"GGUF worker ({self.path}): {msg[2]}")

    def generate(self, args: dict[str, Any], *, seed: int = 0, temperature: float = 1.0, masked: bool = True,
                 repair: bool = False, max_new_tokens: int | None = None,
                 timeout_s: float | None = None) -> StudentOutput:
        """One completion for ``args``, decoded like :meth:`LocalStudent.generate` (``temperature <= 0``: greedy)."""
        return self.generate_levels(args, 1, seed=seed, temperature=temperature, masked=masked, repair=repair,
                                    max_new_tokens=max_new_tokens, timeout_s=timeout_s)[0]

    def generate_levels(self, args: dict[str, Any], n: int, *, seed: int = 0, temperature: float = 1.0,
                        masked: bool = True, repair: bool = False, max_new_tokens: int | None = None,
                        timeout_s: float | None = None) -> list[StudentOutput]:
        """``n`` samples in one round trip (the runtime decodes one sequence at a time).

        Each output's ``latency_ms`` is the whole round trip, as for
        :meth:`LocalStudent.generate_levels`.
        """
        from generator.local.decoding import decode_level_output

        req = {"site": self.site, "args": args, "seed": seed, "n": n, "temperature": temperature,
               "masked": masked, "max_new_tokens": max_new_tokens}
        started = time.perf_counter()
        answers = self._request(req, timeout_s)
        latency = (time.perf_counter() - started) * 1000.0  # the round trip: they arrive together
        outs = []
        for raw in answers:
            result, error, filled = decode_level_output(self.site, raw["text"], args, repair=repair)
            outs.append(StudentOutput(text=raw["text"], result=result, mean_logprob=raw["mean_logprob"],
                                      tokens=raw["tokens"], latency_ms=latency,
                                      prompt_tokens=raw["prompt_tokens"], forced_tokens=raw["forced_tokens"],
                                      error=error, pockets_filled=filled))
        return outs

    def __repr__(self) -> str:
        return f"GGUFWorker({str(self.path)!r}, pid={self.pid}, restarts={self.restarts})"


class GGUFBackend:
    """The level site served from a GGUF file in a worker process, as a facade ``Backend``.

    Same contract as :class:`~generator.local.student.StudentBackend`: each
    request samples ``batch`` masked candidates per worker round trip and
    returns the first the validator accepts, judging at most ``max_tries``.
    The runtime decodes one sequence at a time, so ``batch=1`` (the default)
    wastes nothing: the next candidate is sampled only when needed;
    ``confidence`` is the chosen sample's mean token log-probability.  A
    worker crash or timeout is a :class:`~generator.errors.BackendError`, so
    the facade falls through to its next backend; the next request goes to a
    fresh worker.
    """

    name = "student-gguf"

    def __init__(self, gguf_path: str | Path, *, max_tries: int = 8, batch: int = 1,
                 temperature: float = LEVEL_TEMPERATURE,
                 repair: bool = True, validate: Any = None, name: str | None = None, **worker_kw: Any) -> None:
        if name:
            self.name = name  # e.g. "student", to count with the torch student in routing
        self.worker = GGUFWorker(gguf_path, site=LEVEL_FORM, **worker_kw)
        self.model_version = self.worker.version
        self.max_tries = max_tries
        self.batch = max(1, batch)
        self.temperature = temperature
        self.repair = repair
        self.validate = validate

    def generate(self, request: BackendRequest) -> BackendOutput:
        from generator.backends.base import BackendOutput
        from generator.local.decoding import generate_valid_level

        args = {"spec": request.spec.to_dict()}

        # The request's deadline stops sampling between candidates; it does not kill the worker
        # (a reload costs seconds): only the worker's own timeout_s, meant for hangs, does.
        def sampler(seed: int) -> list[StudentOutput]:
            return self.worker.generate_levels(args, self.batch, seed=seed, temperature=self.temperature,
                                               repair=self.repair)

        tried = generate_valid_level(sampler, request.spec, seed=request.sampling_seed(),
                                     max_tries=self.max_tries, deadline=request.deadline, validate=self.validate)
        out: StudentOutput = tried.output
        level = getattr(tried.report, "level", None) if tried.valid else None
        raw = json.dumps(out.result, separators=(",", ":")) if out.result is not None else out.text
        return BackendOutput(raw=raw, model=self.name, model_version=self.model_version,
                             prompt_tokens=out.prompt_tokens, completion_tokens=out.tokens,
                             confidence=out.mean_logprob, level=level)

    def close(self) -> None:
        self.worker.close()

    def __repr__(self) -> str:
        return f"GGUFBackend({str(self.worker.path)!r})"


def _main(argv: list[str] | None = None) -> int:
    """Worker entry point (started by :class:`GGUFWorker`, not by people)."""
    import argparse
    from multiprocessing.connection import Connection

    parser = argparse.ArgumentParser(description="GGUF student worker process (started by GGUFWorker)")
    parser.add_argument("--fd", type=int, required=True, help="file descriptor of the parent's socket")
    parser.add_argument("--config", required=True, help="worker settings as JSON")
    ns = parser.parse_args(argv)
    _worker_main(Connection(ns.fd), json.loads(ns.config))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
