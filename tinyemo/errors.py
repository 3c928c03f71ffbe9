"""The project's own user-facing errors.

Every error that explains a problem with the user's input or set-up (a missing file, a
malformed parameter, an unknown model name, data that is not there yet) derives from
`TinyEmoError`, besides its usual built-in base (`ValueError`, `FileNotFoundError`, ...).
The command line prints these as one line, `tinyemo <command>: error: <message>`, with
exit status 2; any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations


class TinyEmoError(Exception):
    """A problem with the user's input or set-up; the message names it and the fix."""


class CommandError(TinyEmoError):
    """A command-line input the command cannot use (raised by `tinyemo.cli` commands)."""
