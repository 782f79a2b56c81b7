"""Versioned local models, per call site, with lineage and checksums.

Size: over 400 lines on purpose. Versions, the serving pointer, lineage and
checksums are one on-disk format with one set of atomic-write rules.

Layout under the data directory's ``models/``::

    models/<site-slug>/
        v0001/manifest.json      lineage, metrics, sha256 of every artefact
        v0001/model.safetensors  ... the artefacts themselves
        v0002/...
        SERVING.json             which version serves the site, and the ones before it

``SERVING.json`` is the only thing promote and rollback change, and it is
replaced in one ``os.replace`` after the new content was written and
fsynced, so a process killed mid-promote leaves the previous version served.
A version directory appears in one ``rename`` too, so a half-copied version
is never listed.  Artefact checksums are checked before a model is handed
out (:meth:`Registry.model_dir`); a mismatch refuses the model.

This module is pure Python (no torch): the game's routing reads it to find
what to load, the trainer writes it.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> src = root / "artefacts"; src.mkdir(); _ = (src / "weights.bin").write_bytes(b"w")
>>> reg = Registry(root / "models")
>>> reg.add_version("demo:site#00000000", src, {"base": "micro"})
'v0001'
>>> reg.current("demo:site#00000000") is None
True
>>> reg.promote("demo:site#00000000", "v0001").version
'v0001'
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import msgspec

from generator.errors import GeneratorError, ModelLoadError

__all__ = [
    "Manifest",
    "Registry",
    "RegistryError",
    "CorruptModelError",
    "site_slug",
    "sha256_file",
    "MANIFEST_NAME",
    "SERVING_NAME",
    "SPEC_RANGE_FIELDS",
]

log = logging.getLogger(__name__)

MANIFEST_NAME: Final = "manifest.json"
SERVING_NAME: Final = "SERVING.json"
_VERSION_RE: Final = re.compile(r"^v(\d{4,})$")

#: The spec fields whose range a level version records in ``metrics["spec_ranges"]`` (``area`` is
#: width x height): the trainer writes them (``trainer.pipeline.spec_ranges``), routing serves the
#: version only inside them (``generator.routing.wrappers.SpecEnvelope``).
SPEC_RANGE_FIELDS: Final = ("width", "height", "enemies", "items", "area")

#: Verdicts the trainer records when it adds a version.
VERDICTS: Final = ("candidate", "passed", "rejected")


class RegistryError(GeneratorError):
    """A model version is missing, unknown or cannot be promoted."""


class CorruptModelError(RegistryError, ModelLoadError):
    """An artefact's checksum differs from its manifest: the model is refused."""


class Manifest(msgspec.Struct, kw_only=True):
    """Everything known about one trained version (``manifest.json``).

    ``state`` is the trainer's verdict (``candidate`` / ``passed`` /
    ``rejected``) as stored; :meth:`Registry.versions` reports ``current``,
    ``previous`` (in the rollback history) or ``retired`` (rolled back) in
    its place when the serving pointer says so.
    """

    site: str
    version: str = ""
    base: str = ""
    parent: str | None = None  #: the version this one was compared against / replaces
    created: float = msgspec.field(default_factory=time.time)
    preset: str | None = None
    code_revision: str | None = None
    dataset_hash: str | None = None
    dataset_size: int = 0
    heldout_size: int = 0
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)
    files: dict[str, str] = msgspec.field(default_factory=dict)  #: relative path -> sha256
    state: str = "candidate"
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


class _Serving(msgspec.Struct, kw_only=True):
    site: str
    current: str | None = None
    history: list[str] = msgspec.field(default_factory=list)  #: earlier current versions, oldest first
    retired: list[str] = msgspec.field(default_factory=list)  #: versions rolled back
    updated: float = 0.0


def site_slug(site: str) -> str:
    """A directory name for a call-site id (``module:qualname#hash8``).

    >>> site_slug("jac.levels:design_level#1a2b3c4d")
    'jac.levels--design_level--1a2b3c4d'
    """
    slug = re.sub(r"[^A-Za-z0-9._]+", "--", site).strip("-.")
    if not slug:
        raise RegistryError(f"call-site id {site!r} has no usable characters for a directory name")
    return slug


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a torn one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class Registry:
    """Model versions per call site under ``root`` (usually ``<data dir>/models``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @contextmanager
    def _locked(self, site: str) -> Iterator[None]:
        """Serialise read-modify-write of a site's pointer between processes (POSIX advisory lock)."""
        sdir = self.site_dir(site)
        sdir.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: the atomic replace still prevents torn files
            yield
            return
        with open(sdir / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @classmethod
    def in_data_dir(cls, data_dir: str | os.PathLike[str] | None = None) -> Registry:
        from generator.paths import data_dir as resolve

        return cls(resolve(data_dir) / "models")

    # ---------------------------------------------------------------- reading

    def site_dir(self, site: str) -> Path:
        return self.root / site_slug(site)

    def sites(self) -> list[str]:
        """Call-site ids that have at least one version."""
        out = []
        if not self.root.is_dir():
            return out
        for d in sorted(self.root.iterdir()):
            for v in sorted(d.iterdir()) if d.is_dir() else ():
                if _VERSION_RE.match(v.name) and (v / MANIFEST_NAME).is_file():
                    out.append(self._read_manifest(v).site)
                    break
        return out

    def _read_manifest(self, vdir: Path) -> Manifest:
        try:
            return msgspec.json.decode((vdir / MANIFEST_NAME).read_bytes(), type=Manifest)
        except FileNotFoundError:
            raise RegistryError(f"{vdir} has no {MANIFEST_NAME}; the version is incomplete, remove the folder") from None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CorruptModelError(f"{vdir / MANIFEST_NAME} is unreadable ({exc}); remove the folder or restore it") from None

    def _serving(self, site: str) -> _Serving:
        path = self.site_dir(site) / SERVING_NAME
        if not path.exists():
            return _Serving(site=site)
        try:
            return msgspec.json.decode(path.read_bytes(), type=_Serving)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise RegistryError(f"{path} is unreadable ({exc}); fix or delete it to serve no local model") from None

    def _version_dirs(self, site: str) -> list[Path]:
        d = self.site_dir(site)
        if not d.is_dir():
            return []
        dirs = [p for p in d.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
        return sorted(dirs, key=lambda p: int(p.name[1:]))

    def _with_state(self, m: Manifest, serving: _Serving) -> Manifest:
        if m.version == serving.current:
            state = "current"
        elif m.version in serving.retired:
            state = "retired"
        elif m.version in serving.history:
            state = "previous"
        else:
            state = m.state
        return msgspec.structs.replace(m, state=state)

    def versions(self, site: str) -> list[Manifest]:
        """Every version of ``site``, oldest first, with its serving state."""
        serving = self._serving(site)
        return [self._with_state(self._read_manifest(v), serving) for v in self._version_dirs(site)]

    def get(self, site: str, version: str) -> Manifest:
        vdir = self.site_dir(site) / version
        if not _VERSION_RE.match(version) or not vdir.is_dir():
            known = ", ".join(p.name for p in self._version_dirs(site)) or "none"
            raise RegistryError(f"{site}: no version {version!r} (known: {known}); see `python -m generator.models list`")
        return self._with_state(self._read_manifest(vdir), self._serving(site))

    def current(self, site: str) -> Manifest | None:
        """The version serving ``site``, or ``None`` when no local model is promoted.

        When ``SERVING.json`` names a version whose folder is gone (see
        :meth:`serving_pointer`), the newest earlier version in its history
        that still exists and was not rolled back serves instead (``None``
        when there is none: the teacher serves).
        """
        pointer = self.serving_pointer(site)
        version = pointer["fallback"] if pointer["dangling"] else pointer["pointer"]
        return None if version is None else self.get(site, version)

    def serving_pointer(self, site: str) -> dict[str, Any]:
        """What ``SERVING.json`` says and whether it holds: ``{"pointer", "dangling", "fallback"}``.

        ``dangling`` is true when the named version has no folder (deleted,
        never copied in); ``fallback`` is then the version that serves instead
        (the newest existing, not rolled back version in the history, or
        ``None`` for the teacher).  The file itself is left as it is.
        """
        serving = self._serving(site)
        pointer = serving.current
        if pointer is None or self._exists(site, pointer):
            return {"pointer": pointer, "dangling": False, "fallback": None}
        fallback = next((v for v in reversed(serving.history)
                         if v not in serving.retired and v != pointer and self._exists(site, v)), None)
        return {"pointer": pointer, "dangling": True, "fallback": fallback}

    def _exists(self, site: str, version: str) -> bool:
        vdir = self.site_dir(site) / version
        return bool(_VERSION_RE.match(version)) and (vdir / MANIFEST_NAME).is_file()

    def latest(self, site: str) -> Manifest | None:
        dirs = self._version_dirs(site)
        return self.get(site, dirs[-1].name) if dirs else None

    def verify(self, site: str, version: str) -> Manifest:
        """Check every artefact against its sha256; raise :class:`CorruptModelError` on a mismatch."""
        m = self.get(site, version)
        vdir = self.site_dir(site) / version
        for rel, digest in m.files.items():
            path = vdir / rel
            if not path.is_file():
                raise CorruptModelError(
                    f"{site} {version}: artefact {rel} is missing from {vdir}; "
                    f"the model is refused (roll back or retrain)"
                )
            actual = sha256_file(path)
            if actual != digest:
                raise CorruptModelError(
                    f"{site} {version}: checksum mismatch for {rel} (expected {digest[:12]}…, "
                    f"found {actual[:12]}…); the model is refused (roll back or retrain)"
                )
        return m

    def model_dir(self, site: str, version: str | None = None) -> Path:
        """The verified artefact folder of ``version`` (default: the current one) for loading."""
        if version is None:
            cur = self.current(site)
            if cur is None:
                raise RegistryError(f"{site}: no version is promoted; train one with `python -m generator.train`")
            version = cur.version
        self.verify(site, version)
        return self.site_dir(site) / version

    # ---------------------------------------------------------------- writing

    def add_version(
        self,
        site: str,
        src_dir: str | os.PathLike[str],
        manifest: Manifest | Mapping[str, Any] | None = None,
    ) -> str:
        """Copy the artefacts in ``src_dir`` into a new version of ``site``; return its name.

        The new version is not served until :meth:`promote`.  Checksums are
        computed here; ``manifest`` supplies lineage and metrics (``site``,
        ``version`` and ``files`` are filled in).
        """
        src = Path(src_dir)
        if not src.is_dir():
            raise RegistryError(f"add_version: {src} is not a directory of model artefacts")
        if isinstance(manifest, Manifest):
            fields = manifest.to_dict()
        else:
            fields = dict(manifest or {})
        fields.pop("version", None)
        fields.pop("files", None)
        fields["site"] = site
        if fields.get("state", "candidate") not in VERDICTS:
            raise RegistryError(f"add_version: state must be one of {VERDICTS}, got {fields['state']!r}")
        try:
            base = msgspec.convert(fields, type=Manifest)
        except msgspec.ValidationError as exc:
            raise RegistryError(f"add_version: bad manifest field ({exc})") from None

        sdir = self.site_dir(site)
        sdir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=sdir))
        try:
            files: dict[str, str] = {}
            for path in sorted(src.rglob("*")):
                if not path.is_file() or path.name == MANIFEST_NAME:
                    continue
                rel = path.relative_to(src).as_posix()
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
                files[rel] = sha256_file(dest)
            if not files:
                raise RegistryError(f"add_version: {src} holds no files")
            for name in files:
                with open(tmp / name, "rb") as fh:
                    os.fsync(fh.fileno())
            # Claim the next free number; rename fails if another writer took it.
            while True:
                dirs = self._version_dirs(site)
                n = int(dirs[-1].name[1:]) + 1 if dirs else 1
                version = f"v{n:04d}"
                m = msgspec.structs.replace(base, version=version, files=files)
                _atomic_write(tmp / MANIFEST_NAME, msgspec.json.format(msgspec.json.encode(m), indent=2))
                try:
                    os.rename(tmp, sdir / version)
                    break
                except OSError:
                    if not (sdir / version).exists():
                        raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(sdir)
        log.info("registry: added %s %s (%d files)", site, version, len(files))
        return version

    def set_state(self, site: str, version: str, state: str) -> Manifest:
        """Record the trainer's verdict on a version (``candidate``/``passed``/``rejected``)."""
        if state not in VERDICTS:
            raise RegistryError(f"set_state: state must be one of {VERDICTS}, got {state!r}")
        vdir = self.site_dir(site) / version
        with self._locked(site):
            m = self._read_manifest(vdir) if vdir.is_dir() else self.get(site, version)
            m = msgspec.structs.replace(m, state=state)
            _atomic_write(vdir / MANIFEST_NAME, msgspec.json.format(msgspec.json.encode(m), indent=2))
        return self.get(site, version)

    def _write_serving(self, site: str, serving: _Serving) -> None:
        serving.updated = time.time()
        _atomic_write(self.site_dir(site) / SERVING_NAME, msgspec.json.format(msgspec.json.encode(serving), indent=2))

    def promote(self, site: str, version: str) -> Manifest:
        """Serve ``version`` for ``site`` (checksums verified first); the old one goes on the rollback stack."""
        self.verify(site, version)
        with self._locked(site):
            serving = self._serving(site)
            if serving.current == version:
                return self.get(site, version)
            if serving.current is not None:
                serving.history.append(serving.current)
            if version in serving.retired:
                serving.retired.remove(version)
            serving.current = version
            self._write_serving(site, serving)
        log.info("registry: %s now serves %s", site, version)
        return self.get(site, version)

    def rollback(self, site: str) -> Manifest | None:
        """Retire the current version and serve the one before it (``None``: no local model)."""
        with self._locked(site):
            serving = self._serving(site)
            if serving.current is None:
                raise RegistryError(f"{site}: nothing is promoted, so there is nothing to roll back")
            serving.retired.append(serving.current)
            # Skip earlier versions that were retired or whose folder is gone.
            while serving.history and (
                serving.history[-1] in serving.retired or not (self.site_dir(site) / serving.history[-1]).is_dir()
            ):
                serving.history.pop()
            serving.current = serving.history.pop() if serving.history else None
            self._write_serving(site, serving)
        log.info("registry: %s rolled back to %s", site, serving.current or "no local model")
        return self.current(site)
