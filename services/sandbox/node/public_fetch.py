"""Fetching a competition's public files into a staging folder.

The files are split into a few requests fetched over parallel streams. Each file is hashed as
it is written and checked against the registry's listing when its last piece arrives, so
verification ends with the transfer instead of reading everything a second time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path, PurePosixPath
from typing import NamedTuple, Protocol

from mleb.public_listing import public_listing_digest

from services.common.errors import MlebError, UnavailableError
from services.sandbox.lifecycle.threads import WorkerThreads
from services.sandbox.records import PublicFile

# Where each sandbox's own description goes in its data folder.
DESCRIPTION = "description.md"
# More streams than this gained nothing measurable (bench/sandbox/bench_staging.py).
STREAMS = 4
# A request's path names stay well under gRPC's 4 MiB message limit, and their count under
# the registry's limit on `paths` (docs/limits.md).
_REQUEST_PATH_BYTES = 1 << 20
_REQUEST_PATHS = 50_000


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777


# Files must come out 0444: a chmod per file only when the umask would take bits away.
_CHMOD_FILES = bool(_umask() & 0o444)


class RegistryFetchError(Exception):
    """The public data could not be fetched or did not verify."""


def is_digested_listing(listing: Sequence[PublicFile], digest: str) -> bool:
    """Whether `listing` is the one the registry's `public_listing_digest` names, the only
    listing a node trusts, wherever it came from."""
    return public_listing_digest((f.path, f.size_bytes, f.sha256) for f in listing) == digest


def safe_relative(path: str) -> PurePosixPath:
    """A registry-given path that stays inside the folder it is written to."""
    relative = PurePosixPath(path)
    if not path or relative.is_absolute() or ".." in relative.parts or "\\" in path:
        raise UnavailableError(f"registry sent an unsafe path {path!r}", reason="BAD_REGISTRY_PATH")
    return relative


class Piece(NamedTuple):
    """Consecutive bytes of one public file; `last` ends the file."""

    path: str
    data: bytes
    last: bool


class PieceSource(Protocol):
    def pieces(self, competition_id: str, paths: list[str]) -> AsyncIterator[list[Piece]]:
        """The named files' bytes, file after file, in batches."""
        ...


class RegistrySource(PieceSource, Protocol):
    async def listing(self, competition_id: str) -> list[PublicFile]:
        """The public files as the registry lists them now."""
        ...


def refuse_description_folder(competition_id: str, listing: Sequence[PublicFile]) -> None:
    """A sandbox's description lies at data/description.md: a public folder there cannot."""
    if any(f.path.startswith(f"{DESCRIPTION}/") for f in listing):
        raise RegistryFetchError(
            f"{competition_id!r} has a public folder named {DESCRIPTION}, where each "
            "sandbox's description goes; rename it and import the competition again"
        )


async def fetch_from_registry(
    registry: RegistrySource,
    competition_id: str,
    listing_digest: str,
    dest: Path,
    threads: WorkerThreads,
) -> list[PublicFile]:
    """The registry's public files written under `dest`, from a listing that must be the one
    `listing_digest` names (the one the sandbox was prepared from), each file checked; the
    listing is returned. Failures are RegistryFetchErrors."""
    try:
        listing = await registry.listing(competition_id)
    except MlebError as exc:
        raise RegistryFetchError(exc.message) from exc
    if not is_digested_listing(listing, listing_digest):
        raise RegistryFetchError(
            f"the registry's file listing for {competition_id!r} does not match its digest "
            "(imported again meanwhile?); start the sandbox again"
        )
    refuse_description_folder(competition_id, listing)
    try:
        await fetch_public_files(registry, competition_id, listing, dest, threads)
    except MlebError as exc:
        raise RegistryFetchError(exc.message) from exc
    return listing


def plan_requests(files: Sequence[PublicFile], streams: int) -> list[list[PublicFile]]:
    """At least `streams` requests of about equal bytes, each with a bounded list of paths."""
    buckets: list[list[PublicFile]] = [[] for _ in range(max(1, streams))]
    loads = [0] * len(buckets)
    for public in sorted(files, key=lambda f: f.size_bytes, reverse=True):
        lightest = loads.index(min(loads))
        buckets[lightest].append(public)
        # Files are tiny next to a request's fixed cost, so each counts at least 64 KiB.
        loads[lightest] += max(public.size_bytes, 1 << 16)
    requests = []
    for bucket in buckets:
        current: list[PublicFile] = []
        names = 0
        for public in bucket:
            full = names + len(public.path) > _REQUEST_PATH_BYTES or len(current) >= _REQUEST_PATHS
            if current and full:
                requests.append(current)
                current, names = [], 0
            current.append(public)
            names += len(public.path) + 8
        if current:
            requests.append(current)
    return requests


class _VerifiedWriter:
    """Writes one request's files, read-only, each checked against the listing when done."""

    def __init__(self, dest: Path, expected: Sequence[PublicFile]) -> None:
        self._dest = dest
        self._expected = {f.path: f for f in expected}
        self._received: set[str] = set()
        self._folders: set[Path] = set()
        self._path = ""
        self._fd = -1
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, batch: list[Piece]) -> None:
        for piece in batch:
            if self._fd < 0:
                self._open(piece.path)
            elif piece.path != self._path:
                raise RegistryFetchError(f"public file {self._path} ended early")
            view = memoryview(piece.data)
            while view:
                view = view[os.write(self._fd, view) :]
            self._hash.update(piece.data)
            self._size += len(piece.data)
            if piece.last:
                self._close_verified()

    def _open(self, path: str) -> None:
        if path not in self._expected or path in self._received:
            raise RegistryFetchError(f"the registry sent {path[:200]!r}, which was not asked for")
        target = self._dest / safe_relative(path)
        if target.parent not in self._folders:
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._folders.add(target.parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd = os.open(target, flags, 0o444)
        if _CHMOD_FILES:
            os.fchmod(self._fd, 0o444)
        self._path, self._hash, self._size = path, hashlib.sha256(), 0

    def _close_verified(self) -> None:
        os.close(self._fd)
        self._fd = -1
        expected = self._expected[self._path]
        if self._size != expected.size_bytes or self._hash.hexdigest() != expected.sha256:
            raise RegistryFetchError(f"public file {self._path} failed its sha256 check")
        self._received.add(self._path)

    def finish(self) -> None:
        if self._fd >= 0:
            raise RegistryFetchError(f"public file {self._path} ended early")
        missing = sorted(self._expected.keys() - self._received)
        if missing:
            raise RegistryFetchError(f"public file {missing[0]} was not received")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


async def fetch_public_files(
    source: PieceSource,
    competition_id: str,
    listing: Sequence[PublicFile],
    dest: Path,
    threads: WorkerThreads,
    streams: int = STREAMS,
) -> None:
    """Writes every file of the listing under `dest`, each checked against its sha256."""
    pending = plan_requests(listing, streams)

    async def work() -> None:
        while pending:
            request = pending.pop()
            writer = _VerifiedWriter(dest, request)
            write: asyncio.Future[None] | None = None
            try:
                async for batch in source.pieces(competition_id, [f.path for f in request]):
                    write = asyncio.ensure_future(threads.run(writer.write, batch))
                    await asyncio.shield(write)
                writer.finish()
            finally:
                # Cancelled (another stream failed): the thread still writes; let it end
                # before its file is closed and the caller deletes the folder.
                if write is not None and not write.done():
                    await asyncio.wait([write])
                writer.close()

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(streams, len(pending))):
                group.create_task(work())
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
