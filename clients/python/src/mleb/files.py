"""Reading a file that someone else may have planted: the last path component is never
followed as a link, a FIFO never blocks the reader, and only regular files are read."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path


class UnsafeFile(ValueError):
    """The path is not a readable regular file; the message says why (no contents)."""


def read_regular(
    path: Path, limit: int, check: Callable[[os.stat_result], str | None] = lambda _info: None
) -> bytes:
    """At most `limit` bytes of a regular file. `check` may refuse the file on its status
    (owner, mode) by returning why, before anything of it is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise UnsafeFile(f"cannot open ({exc.strerror or exc})") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile("not a regular file")
        if info.st_size > limit:
            raise UnsafeFile(f"{info.st_size} bytes, over the {limit}-byte limit")
        refused = check(info)
        if refused:
            raise UnsafeFile(refused)
        return handle.read(limit + 1)[:limit]
