"""Where Dungeon Forge keeps its data: ``forge.db``, ``models/``, ``runs/``, ``reports/``.

The data directory is, in order of preference: the ``--data-dir`` a command
line was given (passed here as ``explicit``), the ``FORGE_HOME`` environment
variable, then the platform's user data directory for ``dungeon-forge``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from generator.errors import ConfigError

APP_NAME: Final = "dungeon-forge"
ENV_VAR: Final = "FORGE_HOME"
DB_NAME: Final = "forge.db"
CONFIG_NAME: Final = "forge.toml"
SUBDIRS: Final = ("models", "runs", "reports")


def data_dir(explicit: str | os.PathLike[str] | None = None, *, create: bool = True) -> Path:
    """Resolve the data directory (``explicit`` > ``$FORGE_HOME`` > platform default).

    With ``create`` the directory and its ``models/``, ``runs/`` and
    ``reports/`` subfolders are made if missing.  Raises
    :class:`~generator.errors.ConfigError` when the path exists but is not a
    directory or cannot be created.
    """
    if explicit is not None and str(explicit) != "":
        root = Path(explicit).expanduser()
        origin = "--data-dir"
    elif os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR]).expanduser()
        origin = ENV_VAR
    else:
        import platformdirs  # only needed when nothing was configured

        root = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
        origin = "platform default"
    if root.exists() and not root.is_dir():
        raise ConfigError(f"data dir {root} (from {origin}) is not a directory; pass another --data-dir")
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
            for sub in SUBDIRS:
                (root / sub).mkdir(exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create data dir {root} (from {origin}): {exc.strerror}; "
                f"pass a writable --data-dir or set {ENV_VAR}"
            ) from None
    return root


def db_path(root: str | os.PathLike[str] | None = None) -> Path:
    """Path of the SQLite store inside the data directory (created if needed)."""
    return data_dir(root) / DB_NAME


def read_table(path: str | os.PathLike[str], name: str) -> dict[str, object]:
    """The ``[name]`` table of the TOML file ``path`` (empty when the file or the table is absent).

    Every settings reader of ``forge.toml`` goes through here or :func:`read_toml`,
    so a broken file gets one clear error wherever it is read.
    """
    table = read_toml(path).get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return dict(table)


def read_toml(path: str | os.PathLike[str]) -> dict[str, object]:
    """The whole TOML file ``path`` as a dict (empty when the file is absent)."""
    import tomllib

    from generator.guards.inputs import MAX_CONFIG_BYTES, InputFileError, read_file_text

    path = Path(path)
    if not os.path.lexists(path):
        return {}
    try:
        text = read_file_text(path, max_bytes=MAX_CONFIG_BYTES, what="settings file")
    except InputFileError as exc:
        raise ConfigError(f"{exc}; fix or remove the file") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix or remove the file") from None
    return doc
