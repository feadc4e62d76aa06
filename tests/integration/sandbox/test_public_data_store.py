"""Public data through the object store, against a real registry on port 0: node A fetches
from the registry and publishes; node B, with its own cache, reads the store and never asks
the registry for bytes; a tampered, padded or escaping stored copy is treated as absent. The
same scenarios run on S3 in tests/integration/cluster/test_public_data_s3.py."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from services.sandbox.lifecycle.threads import WorkerThreads
from services.sandbox.node.layout import LayoutBuilder
from services.sandbox.node.public_cache import PublicCache
from services.sandbox.node.public_store import PublicStore, public_keys
from services.sandbox.records import DescriptionVariant
from services.storage.base import ObjectStore
from services.storage.local import LocalStore
from tests.integration.sandbox import test_public_data_fetch
from tests.integration.sandbox.test_public_data_fetch import COMPETITION, CountingSource

registry = test_public_data_fetch.registry  # the real registry on port 0, as a fixture here


def node(source, store: ObjectStore, cache: Path) -> LayoutBuilder:
    return LayoutBuilder(source, PublicCache(cache), WorkerThreads(), PublicStore(store))


def tree(entry: Path) -> dict[str, bytes]:
    return {str(p.relative_to(entry)): p.read_bytes() for p in entry.rglob("*") if p.is_file()}


def put_bytes(store: ObjectStore, key: str, data: bytes, scratch: Path) -> None:
    path = scratch / "upload"
    path.write_bytes(data)
    store.put_file(key, path)


def read(store: ObjectStore, key: str) -> bytes:
    stored = store.open(key)
    try:
        return b"".join(stored.chunks())
    finally:
        stored.close()


async def published_by_node_a(registry, store: ObjectStore, tmp_path: Path):
    _core, source = registry
    competition = await source.get(COMPETITION, DescriptionVariant.PLAIN)
    expected = tree(await node(source, store, tmp_path / "a").public_data(competition, "s1"))
    assert CountingSource.requests > 0
    CountingSource.requests = 0
    return source, competition, expected


async def node_b_reads_the_store(registry, store: ObjectStore, tmp_path: Path) -> None:
    source, competition, expected = await published_by_node_a(registry, store, tmp_path)
    entry = await node(source, store, tmp_path / "b").public_data(competition, "s2")
    assert CountingSource.requests == 0
    assert tree(entry) == expected and len(expected) == 305


async def tampered_copy_falls_back(registry, store: ObjectStore, tmp_path: Path) -> None:
    source, competition, expected = await published_by_node_a(registry, store, tmp_path)
    files_key, _ = public_keys(competition)
    archive = bytearray(read(store, files_key))
    at = archive.index(b"row 5\n")
    archive[at : at + 6] = b"ROW 5\n"  # same size, wrong bytes: only the sha256 can tell
    put_bytes(store, files_key, bytes(archive), tmp_path)
    entry = await node(source, store, tmp_path / "b").public_data(competition, "s2")
    assert CountingSource.requests > 0
    assert tree(entry) == expected


def _archive(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def _hostile(kind: str, original: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(original)) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    planted = tarfile.TarInfo({"planted": "planted.txt", "escape": "../escape.txt",
                               "absolute": "/tmp/abs.txt"}.get(kind, "many/0/0.txt"))  # fmt: skip
    if kind == "link":
        planted.type, planted.linkname = tarfile.SYMTYPE, "/etc/passwd"
        members = [(i, d) for i, d in members if i.name != "many/0/0.txt"]
        return _archive([(planted, b""), *members])
    planted.size = 3
    return _archive([*members, (planted, b"bad")])


async def hostile_archive_is_refused(registry, store: ObjectStore, tmp_path: Path, kind: str):
    source, competition, expected = await published_by_node_a(registry, store, tmp_path)
    files_key, _ = public_keys(competition)
    put_bytes(store, files_key, _hostile(kind, read(store, files_key)), tmp_path)
    entry = await node(source, store, tmp_path / "b").public_data(competition, "s2")
    assert CountingSource.requests > 0
    assert tree(entry) == expected
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "b" / "escape.txt").exists()


HOSTILE = ["planted", "escape", "absolute", "link", "duplicate"]


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return LocalStore(tmp_path / "store")


async def test_node_b_reads_the_store_without_the_registry(registry, store, tmp_path) -> None:
    await node_b_reads_the_store(registry, store, tmp_path)


async def test_a_tampered_copy_falls_back_to_the_registry(registry, store, tmp_path) -> None:
    await tampered_copy_falls_back(registry, store, tmp_path)


@pytest.mark.parametrize("kind", HOSTILE)
async def test_a_hostile_archive_is_refused(registry, store, tmp_path, kind) -> None:
    await hostile_archive_is_refused(registry, store, tmp_path, kind)


async def test_a_listing_not_hashing_to_the_digest_is_ignored(registry, store, tmp_path) -> None:
    source, competition, expected = await published_by_node_a(registry, store, tmp_path)
    _, listing_key = public_keys(competition)
    put_bytes(store, listing_key, b'[["only.txt", 3, "' + b"0" * 64 + b'"]]', tmp_path)
    entry = await node(source, store, tmp_path / "b").public_data(competition, "s2")
    assert CountingSource.requests > 0 and tree(entry) == expected


async def test_a_failed_publish_never_fails_the_fetch(registry, tmp_path) -> None:
    _core, source = registry
    competition = await source.get(COMPETITION, DescriptionVariant.PLAIN)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store's root folder belongs")
    entry = await node(source, LocalStore(blocked), tmp_path / "a").public_data(competition, "s1")
    assert len(tree(entry)) == 305
