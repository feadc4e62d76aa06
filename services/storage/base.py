"""The ObjectStore protocol both stores implement, and the checks they share.

Every object's sha256 and size are recorded when it is put and checked when it is read: a
reader is handed the recorded digest up front and the bytes after, and the last chunk is held
back until the whole object has matched, so a corrupted object never arrives whole."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from services.common.errors import DataLossError, NotFoundError

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size_bytes: int
    sha256: str


@dataclass
class StoredObject:
    """An object opened for reading: its recorded digest, and its bytes once, verified."""

    info: ObjectInfo
    _chunks: Iterator[bytes]
    _close: Callable[[], None] = field(default=lambda: None, repr=False)

    def chunks(self) -> Iterator[bytes]:
        return verified(self._chunks, self.info)

    def close(self) -> None:
        self._close()


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Stores the file's bytes under `key` (replacing any object there) atomically: a
        reader sees the old object or the new one, never a part."""
        ...

    def open(self, key: str) -> StoredObject:
        """The object under `key`; NotFoundError when there is none."""
        ...

    def delete(self, key: str) -> None:
        """Removes the object; a missing one is no error."""
        ...


def file_digest(path: Path) -> tuple[str, int]:
    """The sha256 and size of a file."""
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return digest.hexdigest(), handle.tell()


def copy_hashing(source: BinaryIO, write: Callable[[bytes], object]) -> tuple[str, int]:
    """Copies `source` through `write`; its sha256 and size."""
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(CHUNK_BYTES):
        digest.update(chunk)
        write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def not_found(key: str) -> NotFoundError:
    return NotFoundError(f"no stored object {key}", reason="OBJECT_NOT_FOUND")


def _corrupt(info: ObjectInfo, what: str) -> DataLossError:
    return DataLossError(
        f"the stored object {info.key} is corrupt: {what}",
        reason="OBJECT_CORRUPT",
        metadata={"key": info.key, "recorded_sha256": info.sha256},
    )


def verified(chunks: Iterator[bytes], info: ObjectInfo) -> Iterator[bytes]:
    """`chunks`, checked against the recorded size and sha256; the last one is yielded only
    once the whole object has matched, else DataLossError is raised in its place."""
    digest, size = hashlib.sha256(), 0
    held = b""
    for chunk in chunks:
        if not chunk:
            continue
        digest.update(chunk)
        size += len(chunk)
        if size > info.size_bytes:
            raise _corrupt(info, f"longer than the recorded {info.size_bytes} bytes")
        if held:
            yield held
        held = chunk
    if size != info.size_bytes:
        raise _corrupt(info, f"{size} bytes where {info.size_bytes} were recorded")
    if digest.hexdigest() != info.sha256:
        raise _corrupt(info, "its sha256 differs from the one recorded when it was stored")
    if held:
        yield held
