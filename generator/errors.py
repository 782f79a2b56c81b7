"""Exceptions raised by the generator package (a leaf module)."""

from __future__ import annotations


class GeneratorError(Exception):
    """Base class of every error the generator raises on purpose."""


class ConfigError(GeneratorError):
    """A setting (TOML, environment, command line) is missing or invalid."""


class BackendError(GeneratorError):
    """A backend could not produce output (API down, timeout, model missing...)."""


class BackendDeclined(BackendError):
    """A backend does not take this request: a student asked for a spec outside what it was trained and judged on.

    Not a failure: the facade records the attempt with ``valid`` unset (so
    routing evidence does not count it) and moves on to the next backend.
    """


class StoreError(GeneratorError):
    """The SQLite store cannot be opened, migrated or written."""


class ModelLoadError(GeneratorError):
    """A local model artefact is missing, corrupt or fails its checksum."""
