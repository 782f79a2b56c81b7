"""Serve generic call sites' students from their GGUF export with llama.cpp's own OpenAI-compatible server.

``python -m generator.serve`` is the server for the level site: it applies
the level grammar mask, validates and resamples.  A studio that wants its
*generic* call sites (JSON arguments in, JSON result out) behind an engine
built for serving can run llama-cpp-python's server (``pip install
'dungeon-forge[llamacpp]'``, which builds llama.cpp from source) on the
students' ``student-q8_0.gguf`` exports.  This module writes what that
server needs::

    python -m generator.llama_server --data-dir DIR --out llama/ --port 8080
    python -m llama_cpp.server --config_file llama/llama_cpp_server.json

* one model per promoted generic site, exported from its promoted
  safetensors (f16 by default) with its special tokens marked as control
  tokens, its ``model_alias`` the site id (so a client asks with
  ``model=<site id>``, as for ``generator.serve``);
* a chat template (``chat_format: hf-tokenizer-config``) that turns a chat
  request into exactly the prompt the student was trained on
  (:func:`generator.local.codec.encode_prompt`): ``<s>`` + the last user
  message (the call's arguments as compact JSON with sorted keys:
  ``json.dumps(args, separators=(",", ":"), sort_keys=True)``) + a tab.  Its
  ``eos_token`` is a newline, which llama-cpp-python uses as a stop
  string: a student's answer ends at its newline;
* the client constrains the output with the site's JSON schema:
  ``response_format={"type": "json_object", "schema": SCHEMA}`` (accepted
  by llama-cpp-python's server and by llama.cpp's ``llama-server``), so
  every answer parses and fits the schema.

The level site is refused: its students write the grammar-masked text
form, not JSON (see ``docs/student.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from generator.errors import GeneratorError

__all__ = ["CHAT_TEMPLATE", "CONFIG_NAME", "GGUF_TYPES", "main", "render_prompt", "serving_gguf", "tokenizer_config",
           "write_server_config"]

#: The server config file :func:`write_server_config` writes in its ``out`` folder.
CONFIG_NAME: Final = "llama_cpp_server.json"
#: ``<s>`` + the last user message + the generic prompt separator (a tab), whatever the other messages.
CHAT_TEMPLATE: Final = (
    "{% set ns = namespace(args='') %}"
    "{% for m in messages %}{% if m['role'] == 'user' %}{% set ns.args = m['content'] %}{% endif %}{% endfor %}"
    "{{ bos_token }}{{ ns.args }}\t"
)


def tokenizer_config() -> dict[str, Any]:
    """The ``tokenizer_config.json`` llama-cpp-python's ``hf-tokenizer-config`` chat format reads."""
    return {"chat_template": CHAT_TEMPLATE, "bos_token": "<s>", "eos_token": "\n"}


def render_prompt(messages: Sequence[dict[str, Any]]) -> str:
    """The prompt llama-cpp-python builds from ``messages`` with :func:`tokenizer_config` (same Jinja settings).

    >>> render_prompt([{"role": "system", "content": "x"}, {"role": "user", "content": '{"hero":"Ann"}'}])
    '<s>{"hero":"Ann"}\\t'
    """
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    cfg = tokenizer_config()
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(cfg["chat_template"])
    # llama-cpp-python appends an empty assistant message before rendering
    return template.render(messages=[*messages, {"role": "assistant", "content": ""}],
                           bos_token=cfg["bos_token"], eos_token=cfg["eos_token"])


#: GGUF types llama.cpp serves here; q8_0 segfaulted at the first evaluation in llama-cpp-python 0.3.36 (D22).
GGUF_TYPES: Final = ("f16", "f32", "q8_0")


def serving_gguf(model_dir: Path, out_path: Path, qtype: str = "f16") -> Path:
    """Export ``model_dir`` (a student's safetensors) to ``out_path`` as llama.cpp's server needs it.

    The student's special tokens (those its ``tokenizer.json`` marks
    special: ``<pad> <s> </s> <unk>`` for a micro student) are marked as
    control tokens, so the chat template's ``<s>`` becomes the BOS token the
    student was trained with (a character vocabulary exports them as plain
    text, which llama.cpp would spell out as ``<``, ``s``, ``>``).
    """
    try:
        import gguf

        from generator.local.gguf import export_gguf
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise GeneratorError(f"exporting a GGUF needs the gguf package ({exc}); "
                             "pip install 'dungeon-forge[gguf]'") from None
    special = _special_tokens(Path(model_dir))
    path = export_gguf(model_dir, out_path, qtype)
    reader = gguf.GGUFReader(path, "r+")  # edit the token types in place (same size)
    names = reader.get_field("tokenizer.ggml.tokens").contents()
    types = reader.get_field("tokenizer.ggml.token_type")
    for i, name in enumerate(names):
        if name in special:
            types.parts[types.data[i]][0] = gguf.TokenType.CONTROL
    reader.data.flush()
    del reader
    return path.resolve()


def _special_tokens(model_dir: Path) -> frozenset[str]:
    """The model's own special tokens: those ``tokenizer.json`` marks special, its unknown token, and the
    tokens at ``config.json``'s BOS/EOS/PAD ids (a micro student's character vocabulary holds ``<pad> <s>
    </s> <unk>`` as plain entries).  Taken from the folder, never guessed by name."""
    try:
        tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GeneratorError(f"{model_dir} has no readable tokenizer.json/config.json: {exc}") from None
    special = {t["content"] for t in tok.get("added_tokens") or [] if isinstance(t, dict) and t.get("special")}
    model = tok.get("model") or {}
    if isinstance(model.get("unk_token"), str):
        special.add(model["unk_token"])
    by_id = {i: t for t, i in (model.get("vocab") or {}).items()} if isinstance(model.get("vocab"), dict) else {}
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        ids = config.get(key)
        for i in ids if isinstance(ids, list) else [ids]:
            if isinstance(i, int) and i in by_id:
                special.add(by_id[i])
    return frozenset(special)


def _slug(site: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in site)


def write_server_config(data_dir: str | os.PathLike[str] | None, out: str | os.PathLike[str], *,
                        sites: Sequence[str] | None = None, host: str = "127.0.0.1", port: int = 8080,
                        n_ctx: int = 1024, threads: int = 1, qtype: str = "f16") -> Path:
    """Write llama-cpp-python's server config for the promoted students of ``sites`` (default: every generic site).

    Each student is exported from its promoted (checksum-verified)
    safetensors into ``out`` by :func:`serving_gguf`.  Returns the config
    file's path.  Raises :class:`GeneratorError` for the level site, a site
    without a promoted version, or nothing to serve.
    """
    if qtype not in GGUF_TYPES:
        raise GeneratorError(f"GGUF type {qtype!r} is not one of {', '.join(GGUF_TYPES)}")
    from generator.local.codec import is_level_site
    from generator.local.registry import Registry

    registry = Registry.in_data_dir(data_dir)
    if sites:
        for site in sites:
            if is_level_site(site):
                raise GeneratorError(f"{site} is the level site: its students write the grammar-masked text form, "
                                     "not JSON; serve it with `python -m generator.serve`")
    else:
        sites = [s for s in registry.sites() if registry.current(s) is not None and not is_level_site(s)]
        if not sites:
            raise GeneratorError(f"no generic call site has a promoted student in {registry.root}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    template_path = (out / "tokenizer_config.json").resolve()
    template_path.write_text(json.dumps(tokenizer_config(), indent=1) + "\n")
    models = []
    for site in dict.fromkeys(sites):
        current = registry.current(site)
        if current is None:
            raise GeneratorError(f"site {site} has no promoted version in {registry.root}")
        model_dir = registry.model_dir(site, current.version)  # verifies every checksum
        gguf_path = serving_gguf(model_dir, out / f"{_slug(site)}-{current.version}-{qtype}.gguf", qtype)
        models.append({
            "model": str(gguf_path), "model_alias": site,
            "chat_format": "hf-tokenizer-config", "hf_tokenizer_config_path": str(template_path),
            "n_ctx": n_ctx, "n_threads": threads, "n_threads_batch": threads, "verbose": False,
        })
    config = out / CONFIG_NAME
    config.write_text(json.dumps({"host": host, "port": port, "models": models}, indent=1) + "\n")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m generator.llama_server",
        description="Write a llama-cpp-python server config that serves generic call sites' students from GGUF.",
        epilog="Then: python -m llama_cpp.server --config_file OUT/llama_cpp_server.json "
               "(pip install 'dungeon-forge[llamacpp]'; set API_KEY in its environment to require a key).",
    )
    p.add_argument("--data-dir", help="data directory (default: $FORGE_HOME or the platform data dir)")
    p.add_argument("--out", required=True, help="folder for the config, the chat template and any GGUF export")
    p.add_argument("--site", action="append", default=None,
                   help="generic call-site id (repeatable; default: every generic site with a promoted version)")
    p.add_argument("--host", default="127.0.0.1", help="address the server binds (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    p.add_argument("--n-ctx", type=int, default=1024, help="context length per model (default: 1024)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per model (default: 1)")
    p.add_argument("--gguf-type", choices=GGUF_TYPES, default="f16",
                   help="weights of the served export (default: f16; q8_0 crashed llama-cpp-python 0.3.36 here)")
    args = p.parse_args(argv)
    if not 1 <= args.port <= 65535 or args.n_ctx < 16 or args.threads < 1:
        print("error: --port in 1..65535, --n-ctx >= 16, --threads >= 1", file=sys.stderr)
        return 2
    try:
        config = write_server_config(args.data_dir, args.out, sites=args.site, host=args.host, port=args.port,
                                     n_ctx=args.n_ctx, threads=args.threads, qtype=args.gguf_type)
    except GeneratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {config}\nstart: python -m llama_cpp.server --config_file {config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
