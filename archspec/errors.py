"""One error type for everything a user can get wrong in a spec.

Every failure the user can cause is reported as a :class:`SpecError` and rendered as exactly one
line ``file:line:col: error: key.path: message`` plus an optional ``  hint: ...`` line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Mark", "SpecError", "format_path", "display_path"]


def display_path(path: str | os.PathLike) -> str:
    """A file name fit for one line of output: bytes that are not UTF-8 become ``\\xff`` and control
    characters (a newline in a file name) their escapes."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a name from the file system that is not UTF-8 (surrogateescape)
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text


@dataclass(frozen=True)
class Mark:
    """A position in a source file; ``line`` and ``col`` are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{display_path(self.file)}:{self.line}:{self.col}"


def format_path(path: tuple | list) -> str:
    """``("blocks", "basic", "body", 0, "conv")`` -> ``blocks.basic.body[0].conv``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            if not text.isprintable():
                text = text.encode("unicode_escape").decode("ascii")
            out += ("." if out else "") + (text if len(text) <= 40 else text[:37] + "...")
    return out


def _one_line(text: str) -> str:
    """``text`` with its unprintable characters escaped (a name from the spec may hold a newline or a
    NUL): the error stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class SpecError(Exception):
    """A user-facing error in a spec (or in how archspec was called on it)."""

    def __init__(
        self,
        message: str,
        *,
        mark: Mark | None = None,
        path: tuple | list | str = (),
        hint: str | None = None,
        code: str = "spec_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.path = path if isinstance(path, str) else format_path(path)
        self.hint = hint
        self.code = code

    def format(self) -> str:
        where = _one_line(str(self.mark)) if self.mark else "<spec>:1:1"
        key = f"{self.path}: " if self.path else ""
        text = f"{where}: error: {key}{_one_line(self.message)}"
        if self.hint:
            text += f"\n  hint: {_one_line(self.hint)}"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a non-UTF-8 file name in the message: never a traceback
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return text

    def __str__(self) -> str:
        return self.format()
