"""A competition's public files in the object store, so that the first fetch on a node reads
from the store instead of the registry once any node has fetched them.

Layout, keyed by the registry's listing digest: `public-data/<competition>/<digest>/files.tar`
holds every file of the listing, and `.../listing.json` the listing itself, written after the
archive. One archive per listing rather than one object per file: a listing can hold 200k
small files, and a PUT or GET per object costs a round trip each on S3, where one streamed
archive costs one.

Nothing the store holds is trusted. The stored listing is used only if it hashes to the digest
the registry gave for the competition; each archive entry must be a regular file or folder the
listing names (no links, devices, absolute paths or `..`), of the listed size and sha256, with
every listed file present. Anything else makes the copy absent: the caller empties its staging
folder and fetches from the registry. Publishing is best effort, and two nodes publishing the
same digest write the same bytes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from services.common.errors import MlebError
from services.sandbox.node.public_fetch import (
    RegistryFetchError,
    is_digested_listing,
    safe_relative,
)
from services.sandbox.records import Competition, PublicFile
from services.storage.base import CHUNK_BYTES, ObjectStore, StoredObject

log = logging.getLogger(__name__)

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class StoreCopyError(Exception):
    """The store's copy is missing, or is not exactly the listing's files."""


def public_keys(competition: Competition) -> tuple[str, str]:
    prefix = f"public-data/{competition.id}/{competition.listing_digest}"
    return f"{prefix}/files.tar", f"{prefix}/listing.json"


class _Reader:
    """A stored object's verified chunks as the file tarfile reads from, in small reads:
    each chunk is consumed by position, never re-copied per read."""

    def __init__(self, stored: StoredObject) -> None:
        self._chunks = stored.chunks()
        self._chunk = b""
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        parts = []
        while size != 0:
            if self._at == len(self._chunk):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._chunk, self._at = chunk, 0
                continue  # an empty chunk is not the end
            end = len(self._chunk) if size < 0 else min(len(self._chunk), self._at + size)
            parts.append(self._chunk[self._at : end])
            size -= 0 if size < 0 else end - self._at
            self._at = end
        return b"".join(parts)


@contextlib.contextmanager
def _opened(store: ObjectStore, key: str) -> Iterator[_Reader]:
    try:
        stored = store.open(key)
    except (MlebError, OSError) as exc:  # NotFound, or a store fault: either way, not there
        raise StoreCopyError(f"{key}: {exc}") from None
    try:
        yield _Reader(stored)
    except (MlebError, OSError) as exc:  # DataLoss from the store's own check, a fault
        raise StoreCopyError(f"{key}: {exc}") from None
    finally:
        stored.close()


def _stored_listing(store: ObjectStore, key: str, competition: Competition) -> list[PublicFile]:
    with _opened(store, key) as reader:
        raw = reader.read(64 << 20)  # a 200k-file listing is about 30 MiB of JSON
    try:
        listing = [PublicFile(str(p), int(s), str(h)) for p, s, h in json.loads(raw)]
    except (ValueError, TypeError) as exc:
        raise StoreCopyError(f"{key} is not a listing: {exc}") from None
    if not is_digested_listing(listing, competition.listing_digest):
        raise StoreCopyError(f"{key} does not hash to the registry's listing digest")
    return listing


def _extract(reader: _Reader, listing: Sequence[PublicFile], staging: Path) -> None:
    expected = {f.path: f for f in listing}
    folders = {str(p) for f in listing for p in PurePosixPath(f.path).parents if str(p) != "."}
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                name = member.name.rstrip("/")
                if name in seen:
                    raise StoreCopyError(f"entry {name[:200]!r} appears twice")
                seen.add(name)
                if member.isdir() and name in folders:
                    continue
                public = expected.get(name)
                if not member.isreg() or public is None or member.size != public.size_bytes:
                    raise StoreCopyError(f"entry {name[:200]!r} is not a listed file")
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has one
                _write_verified(staging, public, source)
    except (tarfile.TarError, RegistryFetchError, MlebError, OSError) as exc:
        raise StoreCopyError(f"the archive is unreadable: {exc}") from None
    missing = expected.keys() - seen
    if missing:
        raise StoreCopyError(f"public file {min(missing)[:200]!r} is missing")


def _write_verified(staging: Path, public: PublicFile, source: tarfile.ExFileObject) -> None:
    target = staging / safe_relative(public.path)
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd = os.open(target, _NEW_FILE, 0o444)
    try:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        os.fchmod(fd, 0o444)
    finally:
        os.close(fd)
    if size != public.size_bytes or digest.hexdigest() != public.sha256:
        raise StoreCopyError(f"public file {public.path[:200]!r} failed its sha256 check")


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


class PublicStore:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def load(self, competition: Competition, staging: Path) -> list[PublicFile] | None:
        """Fills the empty `staging` with the verified stored copy and returns its listing;
        None, with `staging` left empty, where the store has no sound copy."""
        files_key, listing_key = public_keys(competition)
        try:
            listing = _stored_listing(self._store, listing_key, competition)
            with _opened(self._store, files_key) as reader:
                _extract(reader, listing, staging)
        except StoreCopyError as exc:
            log.info("public data of %s not taken from the store: %s", competition.id, exc)
            _empty(staging)
            return None
        return listing

    def publish(self, competition: Competition, listing: Sequence[PublicFile], tree: Path) -> None:
        """Stores the verified tree for other nodes; a failure is logged, never raised."""
        files_key, listing_key = public_keys(competition)
        try:
            # Beside the staging folder and named after it: the cache's dot-names are never
            # taken for entries, and a crash leaves it to be swept with the staging folder.
            scratch_dir = tempfile.TemporaryDirectory(
                prefix=f"{tree.name}.publish-", dir=tree.parent
            )
            with scratch_dir as scratch:
                archive = Path(scratch) / "files.tar"
                with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
                    for public in sorted(listing, key=lambda f: f.path):
                        info = tarfile.TarInfo(public.path)
                        info.size, info.mode = public.size_bytes, 0o444
                        with (tree / safe_relative(public.path)).open("rb") as source:
                            tar.addfile(info, source)
                self._store.put_file(files_key, archive)
                rows = [[f.path, f.size_bytes, f.sha256] for f in listing]
                (Path(scratch) / "listing.json").write_text(json.dumps(rows))
                # The listing last: a reader that finds it finds the archive too.
                self._store.put_file(listing_key, Path(scratch) / "listing.json")
        except (MlebError, OSError, tarfile.TarError) as exc:
            log.warning("public data of %s not published to the store: %s", competition.id, exc)
