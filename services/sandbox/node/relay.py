"""Unix-socket listeners and byte relays for the host side of a sandbox's endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path

# sun_path holds 108 bytes; deep temporary directories exceed it.
_MAX_UNIX_PATH = 100
_CHUNK = 65536


def bind_unix_socket(path: Path, mode: int = 0o666) -> socket.socket:
    """A listening Unix socket at `path`, however long the path is.

    The mode lets the sidecar's unprivileged user connect; the sockets directory is the
    sandbox's own, so nobody else reaches it through the bind mount.
    """
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if len(os.fsencode(path)) <= _MAX_UNIX_PATH:
            sock.bind(os.fspath(path))
        else:
            # Bind through the directory's descriptor: /proc/self/fd/N/name is short.
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                sock.bind(f"/proc/self/fd/{dir_fd}/{path.name}")
            finally:
                os.close(dir_fd)
        os.chmod(path, mode)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def _copy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: list[int], index: int
) -> None:
    try:
        while data := await reader.read(_CHUNK):
            counts[index] += len(data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def relay(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    counts: list[int] | None = None,
) -> None:
    """Copies bytes both ways until both directions end, then closes both connections.
    `counts`, when given, receives the bytes copied from a to b and from b to a."""
    counts = [0, 0] if counts is None else counts
    try:
        await asyncio.gather(_copy(a[0], b[1], counts, 0), _copy(b[0], a[1], counts, 1))
    finally:
        for writer in (a[1], b[1]):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
