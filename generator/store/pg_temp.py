"""A throwaway PostgreSQL server from the machine's own binaries, for tests and benchmarks.

:class:`TempPostgres` runs ``initdb`` into a new temporary directory, starts
the server with ``pg_ctl`` on a free port of 127.0.0.1 (its Unix socket in the
same directory), hands out fresh databases, and stops and deletes it all on
:meth:`~TempPostgres.stop`.  PostgreSQL refuses to run as root, so when this
process is root the server runs as the ``postgres`` user (``runuser``) and the
directory is handed to it.

Binaries are looked for in ``FORGE_PG_BIN``, then ``PATH``, then
``pg_config --bindir``.  :func:`find_binaries` says why when they are missing,
so a test can skip (or fail in CI) with that reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["PgBinaries", "TempPostgres", "find_binaries", "missing_reason"]

BIN_ENV: Final = "FORGE_PG_BIN"
_SUPERUSER: Final = "forge"
_RUN_AS: Final = "postgres"


class PgBinaries:
    def __init__(self, initdb: Path, pg_ctl: Path) -> None:
        self.initdb = initdb
        self.pg_ctl = pg_ctl


def find_binaries(env: Mapping[str, str] | None = None, *, pg_config: str | None = "pg_config") -> PgBinaries | None:
    """``initdb`` and ``pg_ctl`` of one installation, or None."""
    env = os.environ if env is None else env
    dirs: list[str] = []
    if env.get(BIN_ENV):
        dirs.append(env[BIN_ENV])
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name, path=env.get("PATH", ""))
        if found:
            dirs.append(str(Path(found).resolve().parent))
    if pg_config and shutil.which(pg_config, path=env.get("PATH", "")):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                dirs.append(out.stdout.strip())
    for d in dict.fromkeys(dirs):
        initdb, pg_ctl = Path(d) / "initdb", Path(d) / "pg_ctl"
        if initdb.is_file() and pg_ctl.is_file() and (Path(d) / "postgres").is_file():
            return PgBinaries(initdb, pg_ctl)
    return None


def missing_reason() -> str | None:
    """Why a temporary server cannot start here (None when it can)."""
    if find_binaries() is None:
        return (f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH, in ${BIN_ENV} "
                f"or via pg_config; install PostgreSQL 15+ to run the PostgreSQL store tests")
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(_RUN_AS)
        except KeyError:
            return f"running as root and there is no {_RUN_AS!r} user to run the PostgreSQL server as"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing (needed to start PostgreSQL as another user)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempPostgres:
    """A PostgreSQL server in a temporary directory.  ``with TempPostgres() as pg: pg.url``.

    ``durable=False`` (tests) turns fsync off for speed; benchmarks keep the
    server's durable defaults.
    """

    def __init__(self, *, durable: bool = False, max_connections: int = 100) -> None:
        self.durable = durable
        self.max_connections = max_connections
        self.root: Path | None = None
        self.port: int | None = None
        self._bins: PgBinaries | None = None
        self._as_root = os.geteuid() == 0
        self._opts = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> TempPostgres:
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        self._bins = find_binaries()
        assert self._bins is not None
        self.root = Path(tempfile.mkdtemp(prefix="forge-pg-"))
        data = self.root / "data"
        try:
            if self._as_root:
                shutil.chown(self.root, _RUN_AS, _RUN_AS)
                self.root.chmod(0o700)
            self._run([str(self._bins.initdb), "-D", str(data), "-U", _SUPERUSER, "--auth=trust",
                       "-E", "UTF8", "--no-sync", "--locale=C"], timeout=120)
            opts = [f"-p {0}", f"-k {self.root}", "-c listen_addresses=127.0.0.1",
                    f"-c max_connections={int(self.max_connections)}"]
            if not self.durable:
                opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            last_error = ""
            for _ in range(5):  # the free port can be taken between choosing and binding it
                self.port = _free_port()
                opts[0] = f"-p {self.port}"
                self._opts = " ".join(opts)
                proc = self._run([str(self._bins.pg_ctl), "-D", str(data), "-l", str(self.root / "server.log"),
                                  "-o", " ".join(opts), "-w", "-t", "60", "start"], timeout=90, check=False)
                if proc.returncode == 0:
                    return self
                last_error = proc.stdout + proc.stderr + self._log_tail()
            raise RuntimeError(f"PostgreSQL did not start: {last_error.strip()[-2000:]}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        if self.root is None:
            return
        data = self.root / "data"
        if self._bins is not None and (data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run([str(self._bins.pg_ctl), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"],
                          timeout=90, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def restart(self, *, down_s: float = 0.0) -> None:
        """Stop the server (clients' connections break), wait ``down_s``, start it again on the same port."""
        self.shutdown()
        time.sleep(down_s)
        self.start_again()

    def shutdown(self) -> None:
        """Stop the server but keep its files (:meth:`start_again` brings it back)."""
        assert self.root is not None and self._bins is not None
        self._run([str(self._bins.pg_ctl), "-D", str(self.root / "data"), "-m", "fast", "-w", "-t", "60", "stop"],
                  timeout=90)

    def start_again(self) -> None:
        assert self.root is not None and self._bins is not None
        self._run([str(self._bins.pg_ctl), "-D", str(self.root / "data"), "-l", str(self.root / "server.log"),
                   "-o", self._opts, "-w", "-t", "60", "start"], timeout=90)

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ databases

    def url_for(self, database: str = "postgres") -> str:
        assert self.port is not None, "start() the server first"
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"forge_{uuid.uuid4().hex[:12]}"
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and _ only")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # ------------------------------------------------------------------ internals

    def _run(self, cmd: list[str], *, timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._as_root:
            cmd = ["runuser", "-u", _RUN_AS, "--", *cmd]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(self.root) if self.root else None)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{Path(cmd[-1] if cmd[-1] != 'stop' else cmd[0]).name} failed "
                               f"({proc.returncode}): {(proc.stdout + proc.stderr).strip()[-2000:]}{self._log_tail()}")
        return proc

    def _log_tail(self) -> str:
        if self.root is None:
            return ""
        try:
            return "\n" + (self.root / "server.log").read_text(errors="replace")[-1500:]
        except OSError:
            return ""
