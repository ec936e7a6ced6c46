"""The project's own user-facing errors.

A :class:`UserError` is a mistake in what the user gave: the pipeline file, its data, an
input folder or a command-line value. The command line prints one as one line (the message
names the file, and the key, line or row) and exits 2. Anything else is a bug or a failure
of the machinery and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["DataError", "InputNotFound", "RunFailed", "UserError"]


class UserError(ValueError):
    """A bad value, file or setting that the user can fix; the message says which."""


class DataError(UserError):
    """Users' data (or a built-in task's settings) cannot be loaded as given."""


class InputNotFound(UserError, FileNotFoundError):
    """A file or folder the user named does not exist (or lacks what it should hold)."""


class RunFailed(Exception):
    """A run stopped by a failure of the machinery (not of the user's input), told in one
    line: the cause, what to do and the log file that holds the traceback. The command line
    prints it as one line and exits 1."""
