"""The one family of errors meant for people: bad input, missing files, wrong settings.

``mdnworld``'s command line prints a ``UserError`` as one line (``error: <message>``) and exits
2; every other exception is a bug or an accident of the machine and keeps its traceback. So
raise a ``UserError`` (or a subclass) when the user can fix the cause, and name the file, the
key or the flag in the message.

Each class also derives from the built-in exception a caller would expect (``ValueError``,
``FileNotFoundError``, ...), so ``except ValueError`` around library calls keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what and where."""


class ConfigError(UserError, ValueError):
    """A config file, key, value or override that cannot be used; the message names it."""


class DataError(UserError, ValueError):
    """A run directory's file that cannot be used (shape, dtype, checksum, format, ...)."""


class MissingError(UserError, FileNotFoundError):
    """A file or folder a stage needs is not there; the message says which stage makes it."""


class ConflictError(UserError, FileExistsError):
    """The run directory holds something that conflicts with the request (another V's
    latents, trained models where a fresh run was asked for, ...)."""


class LockedError(UserError, RuntimeError):
    """Another process holds the run's lock; the message names the file and the holder's pid."""


class EpisodeFileError(DataError):
    """An episode or latent file that cannot be used; ``str(e)`` names the file and the
    problem."""

    def __init__(self, path: object, reason: str) -> None:
        from pathlib import Path

        super().__init__(f"{path}: {reason}")
        self.path = Path(str(path))
        self.reason = reason


class CheckpointError(DataError):
    """A checkpoint or weights file that cannot be used; the message names the file."""
