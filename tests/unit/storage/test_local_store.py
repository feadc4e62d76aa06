"""The local object store: round trips, verification, and a root no key or link escapes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from services.common.errors import (
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    MlebError,
    NotFoundError,
)
from services.storage.base import CHUNK_BYTES
from services.storage.local import HEADER_BYTES, LocalStore
from tests.fixtures.object_stores import read_object, source_file
from tests.fixtures.races import exchange_forever

KEY = "a/b/c/object.bin"


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the store holding a planted object at every level a link could
    point to, with its own valid header: reading one would return b"planted"."""
    folder = tmp_path / "outside"
    planted = LocalStore(folder)
    for key in ("object.bin", "c/object.bin", "b/c/object.bin", "a/b/c/object.bin"):
        planted.put_file(key, source_file(tmp_path, b"planted", "planted"))
    return folder


def test_round_trip_records_sha256_and_size(tmp_path: Path, root: Path) -> None:
    store = LocalStore(root)
    data = os.urandom(3 * CHUNK_BYTES + 17)
    info = store.put_file(KEY, source_file(tmp_path, data))
    assert info.size_bytes == len(data)
    stored = store.open(KEY)
    assert stored.info == info
    assert b"".join(stored.chunks()) == data
    stored.close()
    store.put_file(KEY, source_file(tmp_path, b""))
    assert read_object(store, KEY) == b""
    # Only the object's file: no temporary is left behind.
    assert files_under(root) == ["a", "a/b", "a/b/c", "a/b/c/object.bin"]


def test_missing_objects_and_deletes(tmp_path: Path, root: Path) -> None:
    store = LocalStore(root)
    with pytest.raises(NotFoundError) as raised:
        store.open(KEY)  # the root does not even exist yet
    assert raised.value.reason == "OBJECT_NOT_FOUND"
    assert str(root) not in str(raised.value)
    store.put_file(KEY, source_file(tmp_path, b"x"))
    with pytest.raises(NotFoundError):
        store.open("a/b/c/other")
    store.delete(KEY)
    store.delete(KEY)  # a missing object is no error
    store.delete("never/was")
    with pytest.raises(NotFoundError):
        store.open(KEY)


@pytest.mark.parametrize("key", ["../escape", "/tmp/escape", "a//b", "a\\b", "a\x00b", "x" * 600])
def test_odd_keys_never_touch_the_filesystem(tmp_path: Path, root: Path, key: str) -> None:
    store = LocalStore(root)
    for call in (
        lambda: store.put_file(key, source_file(tmp_path, b"x")),
        lambda: store.open(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(InvalidArgumentError):
            call()
    assert not root.exists()
    assert files_under(tmp_path) == ["source"]


def test_corruption_is_detected_and_the_last_chunk_withheld(tmp_path: Path, root: Path) -> None:
    store = LocalStore(root)
    data = os.urandom(2 * CHUNK_BYTES + 5)
    store.put_file(KEY, source_file(tmp_path, data))
    path = root / KEY
    with path.open("r+b") as handle:  # one flipped bit, deep inside the object
        handle.seek(HEADER_BYTES + CHUNK_BYTES + 3)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 1]))
    received = bytearray()
    with pytest.raises(DataLossError) as raised:
        for chunk in store.open(KEY).chunks():
            received += chunk
    assert raised.value.reason == "OBJECT_CORRUPT"
    assert len(received) < len(data)  # never the whole, corrupted object
    assert str(root) not in str(raised.value)
    # Shortened, lengthened, or headerless: all corrupt.
    for damage in (
        lambda: os.truncate(path, path.stat().st_size - 1),
        lambda: path.open("ab").write(b"more"),
        lambda: path.write_bytes(b"just bytes"),
    ):
        store.put_file(KEY, source_file(tmp_path, data))
        damage()
        with pytest.raises(DataLossError):
            read_object(store, KEY)


@pytest.mark.parametrize("level", range(4))
def test_a_symlink_at_any_level_is_never_followed(
    tmp_path: Path, root: Path, outside: Path, level: int
) -> None:
    """root/a, root/a/b, root/a/b/c or the object itself is a link into `outside`, where the
    rest of the key leads to a planted object."""
    store = LocalStore(root)
    parts = KEY.split("/")
    link = root.joinpath(*parts[: level + 1])
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside / "object.bin" if level == 3 else outside)
    before = files_under(outside)
    with pytest.raises(NotFoundError):
        store.open(KEY)
    if level < 3:
        with pytest.raises(FailedPreconditionError) as raised:
            store.put_file(KEY, source_file(tmp_path, b"written"))
        assert raised.value.reason == "OBJECT_STORE_CONFLICT"
        assert str(root) not in str(raised.value)
    else:  # the link itself is replaced; its target is untouched
        store.put_file(KEY, source_file(tmp_path, b"written"))
        assert not link.is_symlink() and read_object(store, KEY) == b"written"
    store.delete(KEY)
    assert files_under(outside) == before
    assert read_object(LocalStore(outside), KEY) == b"planted"
    assert read_object(LocalStore(outside), "object.bin") == b"planted"


def test_a_folder_swapped_for_a_link_mid_call_never_redirects(
    tmp_path: Path, root: Path, outside: Path
) -> None:
    """root/a trades places with a link to `outside` in a loop while objects are written and
    read: every call reads the real object or fails cleanly, and nothing lands outside."""
    store = LocalStore(root)
    store.put_file(KEY, source_file(tmp_path, b"inside"))
    (root / "swap").symlink_to(outside)
    before = files_under(outside)
    outcomes: set[str] = set()
    with exchange_forever(root / "a", root / "swap"):
        for i in range(300):
            try:
                if i % 2:
                    store.put_file(KEY, source_file(tmp_path, b"inside"))
                    outcomes.add("put")
                else:
                    assert read_object(store, KEY) == b"inside"
                    outcomes.add("read")
            except (NotFoundError, FailedPreconditionError):
                outcomes.add("refused")
    assert files_under(outside) == before
    assert read_object(LocalStore(outside), KEY) == b"planted"
    assert {"put", "read"} <= outcomes  # the race did not simply stop every call


def test_concurrent_puts_leave_one_whole_object(tmp_path: Path, root: Path) -> None:
    store = LocalStore(root)
    bodies = [bytes([n]) * (CHUNK_BYTES + n) for n in range(4)]
    sources = [source_file(tmp_path, body, f"s{n}") for n, body in enumerate(bodies)]
    errors: list[MlebError] = []

    def put(path: Path) -> None:
        for _ in range(10):
            try:
                store.put_file(KEY, path)
            except MlebError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=put, args=(path,)) for path in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert read_object(store, KEY) in bodies
    assert files_under(root / "a/b/c") == ["object.bin"]


def test_stale_temporary_files_of_crashed_puts_are_swept_at_open(tmp_path):
    root = tmp_path / "store"
    store = LocalStore(root)
    store.put_file(KEY, source_file(tmp_path, b"kept"))
    folder = root / "a" / "b" / "c"
    stale, fresh = folder / ".object.bin.0123456789abcdef.part", folder / ".x.fedcba9876543210.part"
    lookalike = folder / ".notes.part"  # not a put's name: never touched
    for path in (stale, fresh, lookalike):
        path.write_bytes(b"half")
    old = os.stat(stale).st_mtime - 2 * 3600
    os.utime(stale, (old, old))
    os.utime(lookalike, (old, old))
    # A link named like a stale part, pointing outside: not a regular file, left alone.
    outside = source_file(tmp_path, b"outside", "outside")
    link = folder / ".y.00000000000000aa.part"
    link.symlink_to(outside)
    os.utime(link, (old, old), follow_symlinks=False)
    os.utime(outside, (old, old))
    reopened = LocalStore(root)
    assert not stale.exists() and fresh.exists() and lookalike.exists()
    assert outside.read_bytes() == b"outside" and link.is_symlink()
    assert read_object(reopened, KEY) == b"kept"
