"""The single-machine object store: one file per object beneath a root folder.

Each folder of a key is opened relative to its parent's descriptor with O_NOFOLLOW, starting
from the root, and the object itself with O_NOFOLLOW: a symlink at any level inside the root
makes the key missing (or a put refused), never followed, and a folder renamed or swapped
mid-call cannot redirect it, because the call holds the descriptor it checked. A put writes a
hidden temporary file in the object's folder and renames it over the name, so readers see the
old object or the new one; one left by a writer that died is swept when a store is opened
once it is an hour old. Each file starts with a fixed-size header naming the object's
sha256 and size, written last, so the record and the bytes can never come apart."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from services.common.errors import DataLossError, FailedPreconditionError, NotFoundError
from services.storage.base import (
    CHUNK_BYTES,
    ObjectInfo,
    StoredObject,
    copy_hashing,
    not_found,
)
from services.storage.keys import check_key

HEADER_BYTES = 128
_HEADER = re.compile(rb"mleb-object 1 ([0-9a-f]{64}) ([0-9]{1,20}) *\n")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# What a symlink, a file where a folder belongs, or a missing level makes an open fail with.
_ABSENT = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENXIO}
_PART = re.compile(r"\..+\.[0-9a-f]{16}\.part")
# A put's temporary file older than this was left by a writer that died mid-write: no live
# put takes this long between creating it and renaming it away.
STALE_PART_S = 3600.0


def _header(sha256: str, size: int) -> bytes:
    return f"mleb-object 1 {sha256} {size}".encode().ljust(HEADER_BYTES - 1) + b"\n"


def _conflict(key: str) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"object {key} cannot be stored: a level of its key is not a plain folder in the store",
        reason="OBJECT_STORE_CONFLICT",
    )


def sweep_stale_parts(root: Path, older_than_s: float = STALE_PART_S) -> int:
    """Removes the temporary files of puts that crashed; returns how many. Walks by
    descriptor without following links, so nothing outside the root is touched."""
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for _folder, _dirs, files, fd in os.fwalk(root, follow_symlinks=False):
        for name in files:
            if not _PART.fullmatch(name):
                continue
            with contextlib.suppress(FileNotFoundError):
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                    os.unlink(name, dir_fd=fd)
                    removed += 1
    return removed


class LocalStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        sweep_stale_parts(root)

    @contextlib.contextmanager
    def _folder(self, key: str, segments: list[str], create: bool) -> Iterator[int]:
        """The descriptor of the key's folder, walked from the root without links."""
        if create:
            self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise not_found(key) from None
        try:
            for name in segments[:-1]:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o700, dir_fd=fd)
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in _ABSENT:
                        raise
                    raise (_conflict(key) if create else not_found(key)) from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        segments = check_key(key)
        name = segments[-1]
        with self._folder(key, segments, create=True) as folder, path.open("rb") as source:
            # Dot-first names are never keys (keys.py), so this cannot meet an object.
            temporary = f".{name}.{secrets.token_hex(8)}.part"
            fd = os.open(temporary, _NEW_FLAGS, 0o600, dir_fd=folder)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(bytes(HEADER_BYTES))
                    sha256, size = copy_hashing(source, out.write)
                    out.flush()
                    os.pwrite(out.fileno(), _header(sha256, size), 0)
                    os.fsync(out.fileno())
                try:
                    os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
                except IsADirectoryError:
                    raise _conflict(key) from None
                os.fsync(folder)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary, dir_fd=folder)
                raise
        return ObjectInfo(key, size, sha256)

    def open(self, key: str) -> StoredObject:
        segments = check_key(key)
        with self._folder(key, segments, create=False) as folder:
            try:
                fd = os.open(segments[-1], _READ_FLAGS, dir_fd=folder)
            except OSError as exc:
                if exc.errno not in _ABSENT | {errno.EISDIR}:
                    raise
                raise not_found(key) from None
        handle = os.fdopen(fd, "rb")
        try:
            info = self._read_header(key, handle.fileno())
        except BaseException:
            handle.close()
            raise
        handle.seek(HEADER_BYTES)
        return StoredObject(info, iter(lambda: handle.read(CHUNK_BYTES), b""), handle.close)

    @staticmethod
    def _read_header(key: str, fd: int) -> ObjectInfo:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise not_found(key)
        match = _HEADER.fullmatch(os.pread(fd, HEADER_BYTES, 0))
        if match is None:
            raise DataLossError(
                f"the stored object {key} has no valid header", reason="OBJECT_CORRUPT"
            )
        return ObjectInfo(key, int(match[2]), match[1].decode())

    def delete(self, key: str) -> None:
        segments = check_key(key)
        missing = (NotFoundError, FileNotFoundError)
        with contextlib.suppress(*missing), self._folder(key, segments, create=False) as fd:
            os.unlink(segments[-1], dir_fd=fd)
