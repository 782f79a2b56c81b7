"""Exceptions raised by the trainer (a leaf module)."""

from __future__ import annotations


class TrainerError(Exception):
    """Base class of every error the trainer raises on purpose."""


class BaseModelMissing(TrainerError):
    """The requested base weights are not on disk (nothing can be downloaded)."""


class DatasetError(TrainerError):
    """Not enough usable data, or an export/import problem."""


class RegistryError(TrainerError):
    """A model version is missing, corrupt (checksum mismatch) or cannot be promoted."""
