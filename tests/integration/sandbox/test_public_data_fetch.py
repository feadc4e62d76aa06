"""The sandbox service's first fetch of public data, against a real registry on port 0:
parallel packed streams, verification as the bytes arrive, the sealed entry, one fetch for
concurrent sandboxes, and a registry that serves the wrong bytes."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import stat
from pathlib import Path

import pytest
from mleb.public_listing import public_listing_digest
from mleb.registry.v1 import registry_service_pb2 as pb

from services.registry.app import registry_service
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller
from services.registry.importers.own_format import import_competition
from services.sandbox.lifecycle.threads import WorkerThreads
from services.sandbox.node.layout import LayoutBuilder
from services.sandbox.node.public_cache import PublicCache
from services.sandbox.node.public_fetch import Piece, RegistryFetchError
from services.sandbox.node.registry_client import RegistryCompetitions
from services.sandbox.records import Competition, DescriptionVariant, PublicFile
from tests.conftest import bearer
from tests.fixtures.registry_trees import build_own_competition

COMPETITION = "own-comp"
# Bigger than one 1 MiB chunk, so it spans several packed replies.
BIG = 2 * (1 << 20) + 12345


class CountingSource(RegistryCompetitions):
    """The real client, counting the download requests it makes."""

    requests = 0

    async def pieces(self, competition_id: str, paths: list[str]):
        type(self).requests += 1
        async for batch in super().pieces(competition_id, paths):
            yield batch


@pytest.fixture
async def registry(settings, tmp_path: Path, serve, channel_to, service_token):
    settings = dataclasses.replace(settings, database_url=f"sqlite:///{tmp_path / 'r.db'}")
    core = RegistryCore.from_settings(settings)
    folder = build_own_competition(tmp_path / "own", COMPETITION)
    public = folder / "public"
    for index in range(300):
        (public / "many" / f"{index % 7}").mkdir(parents=True, exist_ok=True)
        (public / "many" / f"{index % 7}" / f"{index}.txt").write_text(f"row {index}\n")
    (public / "empty.txt").write_bytes(b"")
    (public / "big.bin").write_bytes(os.urandom(BIG))
    import_competition(CompetitionInstaller(core.sessions, core.storage), folder)
    server = await serve([registry_service(settings)], settings)
    CountingSource.requests = 0
    yield core, CountingSource(channel_to(server), bearer(service_token))
    core.close()


async def test_fetch_seals_exactly_the_public_files(registry, tmp_path: Path) -> None:
    core, source = registry
    competition = await source.get(COMPETITION, DescriptionVariant.PLAIN)
    builder = LayoutBuilder(source, PublicCache(tmp_path / "cache"), WorkerThreads())
    entry = await builder.public_data(competition, "s1")
    public = core.storage.public_dir(COMPETITION)
    listed = {f.path for f in await source.listing(COMPETITION)}
    assert competition.file_count == len(listed)
    found = {str(path.relative_to(entry)): path for path in entry.rglob("*") if not path.is_dir()}
    # Every public file, the description placeholder, and nothing else (no answers).
    assert set(found) == listed | {"description.md"}
    assert "big.bin" in listed and len(listed) == 304
    for name in listed:
        assert found[name].read_bytes() == (public / name).read_bytes()
    assert found["description.md"].read_bytes() == b""
    for path in [entry, *entry.rglob("*")]:
        mode = path.lstat().st_mode
        assert not stat.S_ISLNK(mode)
        assert stat.S_IMODE(mode) == (0o755 if stat.S_ISDIR(mode) else 0o444), path
    # Split over parallel streams; a second sandbox fetches nothing.
    assert CountingSource.requests > 1
    before = CountingSource.requests
    assert await builder.public_data(competition, "s2") == entry
    assert CountingSource.requests == before


async def test_concurrent_sandboxes_share_one_fetch(registry, tmp_path: Path) -> None:
    _core, source = registry
    competition = await source.get(COMPETITION, DescriptionVariant.PLAIN)
    builder = LayoutBuilder(source, PublicCache(tmp_path / "cache"), WorkerThreads())
    solo = LayoutBuilder(source, PublicCache(tmp_path / "solo"), WorkerThreads())
    await solo.public_data(competition, "s0")
    one_fetch = CountingSource.requests
    entries = await asyncio.gather(
        *(builder.public_data(competition, f"s{i}") for i in range(1, 6))
    )
    assert len(set(entries)) == 1
    assert CountingSource.requests == 2 * one_fetch
    assert PublicCache(tmp_path / "cache").entries()[0].pinned_by == {f"s{i}" for i in range(1, 6)}


async def test_wrong_bytes_of_the_right_size_fail_and_leave_nothing(
    registry, tmp_path: Path
) -> None:
    core, source = registry
    competition = await source.get(COMPETITION, DescriptionVariant.PLAIN)
    # The registry's copy changes after import without changing size: it serves bad bytes.
    tampered = core.storage.public_dir(COMPETITION) / "many" / "3" / "10.txt"
    tampered.write_text(tampered.read_text().upper())
    cache = tmp_path / "cache"
    builder = LayoutBuilder(source, PublicCache(cache), WorkerThreads())
    with pytest.raises(RegistryFetchError, match=r"many/3/10\.txt failed its sha256 check"):
        await builder.public_data(competition, "s1")
    assert list((cache / COMPETITION).iterdir()) == []


class Lying:
    """A registry that lists `files` and answers with whatever paths it is asked for."""

    def __init__(self, files: list[PublicFile]) -> None:
        self.files = files

    async def get(self, *_args):
        raise AssertionError("the builder is handed the competition")

    async def listing(self, _competition_id):
        return self.files

    async def pieces(self, _competition_id, paths):
        yield [Piece(path, b"x", True) for path in paths]


def _claiming(competition: Competition, files: list[PublicFile]) -> Competition:
    """The competition as a registry would describe it if `files` were its listing."""
    digest = public_listing_digest((f.path, f.size_bytes, f.sha256) for f in files)
    return dataclasses.replace(competition, listing_digest=digest, file_count=len(files))


@pytest.mark.parametrize(
    "path", ["../../escaped.txt", "/tmp/escaped.txt", "a/../../escaped.txt", "a//../escaped.txt"]
)
async def test_a_listing_that_climbs_out_is_refused(registry, tmp_path: Path, path: str) -> None:
    _core, source = registry
    competition = await source.get(COMPETITION, DescriptionVariant.PLAIN)
    files = [PublicFile(path, 1, hashlib.sha256(b"x").hexdigest())]
    builder = LayoutBuilder(Lying(files), PublicCache(tmp_path / "cache"), WorkerThreads())
    with pytest.raises(RegistryFetchError, match="unsafe path"):
        await builder.public_data(_claiming(competition, files), "s1")
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not Path("/tmp/escaped.txt").exists()


async def test_a_listing_that_is_not_the_digested_one_is_refused(registry, tmp_path: Path) -> None:
    """The cache key is the digest: a registry (or a re-import) that lists other files
    than the digest names must not fill that entry."""
    _core, source = registry
    competition = await source.get(COMPETITION, DescriptionVariant.PLAIN)
    real = await source.listing(COMPETITION)
    extra = [*real, PublicFile("planted.txt", 1, hashlib.sha256(b"x").hexdigest())]
    cache = tmp_path / "cache"
    builder = LayoutBuilder(Lying(extra), PublicCache(cache), WorkerThreads())
    with pytest.raises(RegistryFetchError, match="does not match its digest"):
        await builder.public_data(competition, "s1")
    assert not list(cache.rglob("planted.txt"))


async def test_a_public_folder_named_like_the_description_is_refused(
    registry, tmp_path: Path
) -> None:
    _core, source = registry
    competition = await source.get(COMPETITION, DescriptionVariant.PLAIN)
    files = [PublicFile("description.md/notes.txt", 1, hashlib.sha256(b"x").hexdigest())]
    builder = LayoutBuilder(Lying(files), PublicCache(tmp_path / "cache"), WorkerThreads())
    with pytest.raises(RegistryFetchError, match=r"public folder named description\.md"):
        await builder.public_data(_claiming(competition, files), "s1")


async def test_packed_and_unpacked_replies_carry_the_same_bytes(registry) -> None:
    core, source = registry
    stub = source._stub

    async def read(packed: bool) -> tuple[dict[str, bytes], int]:
        files: dict[str, bytearray] = {}
        replies = 0
        request = pb.DownloadPublicDataRequest(competition_id=COMPETITION, packed=packed)
        async for reply in stub.DownloadPublicData(request, metadata=source._metadata):
            replies += 1
            assert bool(reply.chunks) == packed
            for chunk in reply.chunks or [reply]:
                data = files.setdefault(chunk.path, bytearray())
                assert chunk.offset == len(data)
                data += chunk.data
                if chunk.last_chunk:
                    assert hashlib.sha256(data).hexdigest() == chunk.sha256
        return {k: bytes(v) for k, v in files.items()}, replies

    packed, packed_replies = await read(True)
    plain, plain_replies = await read(False)
    assert packed == plain and len(plain) == 304
    # 303 small files and a 3-chunk one: one reply each unpacked, a handful packed.
    assert plain_replies == 306 and packed_replies <= 4
    assert packed["big.bin"] == (core.storage.public_dir(COMPETITION) / "big.bin").read_bytes()


async def test_prepare_mounts_the_entry_or_links_each_file(registry, tmp_path: Path) -> None:
    _core, source = registry
    competition = await source.get(COMPETITION, DescriptionVariant.PLAIN)
    builder = LayoutBuilder(source, PublicCache(tmp_path / "cache"), WorkerThreads())
    shared = await builder.prepare(tmp_path / "s1", competition, "s1", shared_mount=True)
    entry = await builder.public_data(competition, "s0")
    # The mounting backend gets the entry itself: no per-file work in the sandbox's folder.
    assert shared.public_dir == entry and shared.data_source == entry
    assert not shared.data_dir.exists()
    assert shared.description_file.read_text() == competition.description
    assert stat.S_IMODE(shared.description_file.stat().st_mode) == 0o444
    linked = await builder.prepare(tmp_path / "s2", competition, "s2", shared_mount=False)
    assert linked.public_dir is None and linked.data_source == linked.data_dir
    train = linked.data_dir / "many" / "3" / "10.txt"
    assert train.stat().st_ino == (entry / "many" / "3" / "10.txt").stat().st_ino
    assert (linked.data_dir / "description.md").read_text() == competition.description
    # The sandbox's own description never lands in the shared entry.
    assert (entry / "description.md").read_bytes() == b""
