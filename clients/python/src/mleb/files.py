"""Reading a file that someone else may have planted: the last path component is never
followed as a link, a FIFO never blocks the reader, and only regular files are read."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path


class UnsafeFile(ValueError):
    """The path is not a readable regular file; the message says why (no contents)."""


@contextlib.contextmanager
def open_regular(
    path: Path, limit: int, check: Callable[[os.stat_result], str | None] = lambda _info: None
) -> Iterator[io.BufferedReader]:
    """A regular file of at most `limit` bytes, opened for reading. `check` may refuse it on
    its status (owner, mode) by returning why, before anything of it is read."""
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
        yield handle


def read_regular(
    path: Path, limit: int, check: Callable[[os.stat_result], str | None] = lambda _info: None
) -> bytes:
    """At most `limit` bytes of a regular file, refused as `open_regular` refuses it."""
    with open_regular(path, limit, check) as handle:
        return handle.read(limit + 1)[:limit]
