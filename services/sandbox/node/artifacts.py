"""Packing a sandbox's outputs (submission/, logs/, code/) into a tar archive, and retention.

The folders are writable by the agent, which may be running and racing us (renames, links
swapped in with RENAME_EXCHANGE), so they are read as hostile. Every folder is opened
relative to its parent's descriptor with O_NOFOLLOW | O_DIRECTORY and every file with
O_NOFOLLOW, starting from the sandbox folder itself: a link at any level makes that open
fail and the entry is skipped, never followed. What is archived is checked on the opened
descriptor (fstat), so only the agent's own regular files and folders go in.

The archive is written sparse: holes in the agent's files stay holes in the scratch file,
so a `truncate -s 3G` file costs no scratch disk. The archived (apparent) size counts
against the cap, builds per sandbox are one at a time and all builds share a cap, so
concurrent downloads cannot add up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.common.errors import QuotaViolation, ResourceExhaustedError, invalid_field
from services.sandbox.db import store
from services.sandbox.db.schema import SandboxRow
from services.sandbox.lifecycle.states import TERMINAL_STATES

OUTPUT_DIRS = ("submission", "logs", "code")
CHUNK_BYTES = 1 << 20
# Deeper trees or more entries than this are refused rather than walked.
MAX_DEPTH = 64
MAX_ENTRIES = 200_000
# Archive builds in flight at once in this process, over all sandboxes.
MAX_CONCURRENT_BUILDS = 4

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
# What a racing agent can make an open or stat fail with: the entry is skipped.
_RACE_ERRNOS = {errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.ENXIO, errno.EPERM}
_BLOCK = tarfile.BLOCKSIZE


@dataclass(frozen=True)
class Archive:
    path: Path
    size_bytes: int
    sha256: str
    # Gives the build slot back once the scratch file is gone.
    release: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)

    def chunks(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.release()


def _too_big(sandbox_id: str, cap: int) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"the artifacts of sandbox {sandbox_id} exceed the {cap}-byte cap",
        reason="ARTIFACTS_TOO_LARGE",
        metadata={"sandbox_id": sandbox_id, "max_bytes": str(cap)},
        quota=[QuotaViolation(f"sandbox:{sandbox_id}/artifacts", f"at most {cap} bytes")],
    )


def _too_many(sandbox_id: str, what: str) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"the outputs of sandbox {sandbox_id} have {what}",
        reason="ARTIFACTS_TOO_COMPLEX",
        metadata={"sandbox_id": sandbox_id, "max_depth": str(MAX_DEPTH)},
        quota=[
            QuotaViolation(
                f"sandbox:{sandbox_id}/artifacts",
                f"at most {MAX_ENTRIES} entries, {MAX_DEPTH} folders deep",
            )
        ],
    )


def _busy(sandbox_id: str, what: str) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"{what}; retry once it has finished",
        reason="ARTIFACTS_BUSY",
        metadata={"sandbox_id": sandbox_id},
        quota=[QuotaViolation(f"sandbox:{sandbox_id}/artifacts", what)],
    )


class BuildSlots:
    """One archive build per sandbox at a time, and at most `limit` in all; refused, not
    queued, so a caller looping on downloads cannot pile up scratch files."""

    def __init__(self, limit: int = MAX_CONCURRENT_BUILDS) -> None:
        self._limit = limit
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def acquire(self, sandbox_id: str) -> Callable[[], None]:
        """Takes the sandbox's slot; the returned function gives it back."""
        with self._lock:
            if sandbox_id in self._held:
                raise _busy(sandbox_id, "an artifact download of this sandbox is in progress")
            if len(self._held) >= self._limit:
                raise _busy(sandbox_id, f"{self._limit} artifact downloads are in progress")
            self._held.add(sandbox_id)

        def release() -> None:
            with self._lock:
                self._held.discard(sandbox_id)

        return release


@dataclass
class _Entry:
    arcname: str
    info: os.stat_result
    fd: int | None = None  # an open regular file; folders carry none


def _open_at(name: str, dir_fd: int, flags: int) -> int | None:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _RACE_ERRNOS:
            return None
        raise


class _Walk:
    """Folders and regular files beneath one folder descriptor, never through a link."""

    def __init__(self, sandbox_id: str, strict: bool = True) -> None:
        self._sandbox_id = sandbox_id
        # Strict walks refuse a tree over the limits; others stop at them (what the agent
        # wrote must never stop its sandbox from finishing).
        self._strict = strict
        self.entries = 0

    def _over(self, what: str) -> None:
        if self._strict:
            raise _too_many(self._sandbox_id, what)

    def tree(self, dir_fd: int, prefix: str, depth: int = 0) -> Iterator[_Entry]:
        if depth > MAX_DEPTH:
            self._over(f"folders nested over {MAX_DEPTH} deep")
            return
        try:
            names = sorted(os.listdir(dir_fd))
        except OSError as exc:
            if exc.errno in _RACE_ERRNOS:
                return
            raise
        for name in names:
            self.entries += 1
            if self.entries > MAX_ENTRIES:
                self._over(f"over {MAX_ENTRIES} entries")
                return
            arcname = f"{prefix}/{name}"
            try:
                before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in _RACE_ERRNOS:
                    continue
                raise
            if stat.S_ISDIR(before.st_mode):
                child = _open_at(name, dir_fd, _DIR_FLAGS)
                if child is None:
                    continue
                try:
                    yield _Entry(arcname, os.fstat(child))
                    yield from self.tree(child, arcname, depth + 1)
                finally:
                    os.close(child)
            elif stat.S_ISREG(before.st_mode):
                fd = _open_at(name, dir_fd, _FILE_FLAGS)
                if fd is None:
                    continue
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):  # swapped for a FIFO or the like
                    os.close(fd)
                    continue
                yield _Entry(arcname, info, fd)


@contextlib.contextmanager
def _output_folders(root: Path) -> Iterator[Iterator[tuple[str, int]]]:
    """Descriptors for each output folder, opened beneath the sandbox folder."""
    root_fd = os.open(root, _DIR_FLAGS)

    def folders() -> Iterator[tuple[str, int]]:
        for name in OUTPUT_DIRS:
            fd = _open_at(name, root_fd, _DIR_FLAGS)
            if fd is None:
                continue
            try:
                yield name, fd
            finally:
                os.close(fd)

    try:
        yield folders()
    finally:
        os.close(root_fd)


def outputs_size(root: Path) -> int:
    """The apparent size of the regular files in the output folders, up to the walk's
    limits; never fails because of what the agent wrote."""
    total = 0
    walk = _Walk("", strict=False)
    with _output_folders(root) as folders:
        for name, fd in folders:
            for entry in walk.tree(fd, name):
                if entry.fd is not None:
                    os.close(entry.fd)
                    total += entry.info.st_size
    return total


def has_submission(root: Path) -> bool:
    """Whether submission/submission.csv is a regular file, looked up without links."""
    with _output_folders(root) as folders:
        for name, fd in folders:
            if name == "submission":
                try:
                    info = os.stat("submission.csv", dir_fd=fd, follow_symlinks=False)
                except OSError:
                    return False
                return stat.S_ISREG(info.st_mode)
    return False


class _SparseTar:
    """A ustar/pax stream written at explicit offsets, leaving holes where the sources have
    them. tarfile writes every byte of a file; here a file's holes are skipped over."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.offset = 0

    def _put(self, data: bytes, at: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, at)
            view, at = view[written:], at + written

    def _header(self, member: tarfile.TarInfo) -> None:
        header = member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self._put(header, self.offset)
        self.offset += len(header)

    def folder(self, arcname: str, mtime: float) -> None:
        member = tarfile.TarInfo(arcname)
        member.type, member.mode, member.mtime = tarfile.DIRTYPE, 0o755, int(mtime)
        self._header(member)

    def file(self, arcname: str, source: int, size: int, mtime: float) -> None:
        member = tarfile.TarInfo(arcname)
        member.size, member.mode, member.mtime = size, 0o644, int(mtime)
        self._header(member)
        for start, end in _data_extents(source, size):
            at = start
            while at < end:
                chunk = os.pread(source, min(CHUNK_BYTES, end - at), at)
                if not chunk:  # truncated meanwhile: the rest reads back as zeros
                    break
                self._put(chunk, self.offset + at)
                at += len(chunk)
        self.offset += -(-size // _BLOCK) * _BLOCK

    def close(self) -> None:
        # Two zero blocks end the archive; written, so the file's length is right.
        self._put(bytes(2 * _BLOCK), self.offset)
        self.offset += 2 * _BLOCK


def _data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """The [start, end) ranges of `fd` below `size` that hold data (holes skipped)."""
    at = 0
    while at < size:
        try:
            start = os.lseek(fd, at, os.SEEK_DATA)
            end = os.lseek(fd, start, os.SEEK_HOLE)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but holes from here on
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # no hole support: all data
                yield at, size
                return
            raise
        if start >= size:
            return
        yield start, min(end, size)
        at = end


def build_archive(
    sandbox_id: str, root: Path, scratch_dir: Path, max_bytes: int, slots: BuildSlots
) -> Archive:
    """Writes the archive to a scratch file; the caller streams it and then removes it."""
    release = slots.acquire(sandbox_id)
    try:
        path, size = _write(sandbox_id, root, scratch_dir, max_bytes)
        archive = Archive(path, size, "", release)
        digest = hashlib.sha256()
        try:
            for chunk in archive.chunks():
                digest.update(chunk)
        except BaseException:
            archive.remove()
            raise
    except BaseException:
        release()
        raise
    return dataclasses.replace(archive, sha256=digest.hexdigest())


def _write(sandbox_id: str, root: Path, scratch_dir: Path, max_bytes: int) -> tuple[Path, int]:
    scratch_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{sandbox_id}-", suffix=".tar", dir=scratch_dir)
    path = Path(name)
    try:
        tar = _SparseTar(fd)
        for top in OUTPUT_DIRS:  # always there, even where the agent removed one
            tar.folder(top, 0)
        walk = _Walk(sandbox_id)
        with _output_folders(root) as folders:
            for top, top_fd in folders:
                for entry in walk.tree(top_fd, top):
                    if entry.fd is None:
                        tar.folder(entry.arcname, entry.info.st_mtime)
                        if tar.offset > max_bytes:
                            raise _too_big(sandbox_id, max_bytes)
                        continue
                    try:
                        # Headers count too: deep, long names make them large.
                        if tar.offset + entry.info.st_size > max_bytes:
                            raise _too_big(sandbox_id, max_bytes)
                        tar.file(entry.arcname, entry.fd, entry.info.st_size, entry.info.st_mtime)
                    finally:
                        os.close(entry.fd)
        tar.close()
        os.ftruncate(fd, tar.offset)
        return path, tar.offset
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def remove_tree(root: Path) -> None:
    """Deletes a sandbox's host folder; links inside are removed, never followed.

    Only for ended sandboxes, whose containers are stopped: nothing races this walk."""
    if root.is_symlink():
        root.unlink()
    elif root.exists():
        # Agents may leave read-only folders behind; make them writable for removal.
        for current, dirs, _files in os.walk(root, followlinks=False):
            for name in dirs:
                path = Path(current) / name
                if not path.is_symlink():
                    path.chmod(0o700)
        shutil.rmtree(root)


def clean_expired(sessions: sessionmaker[Session], older_than_s: float) -> list[str]:
    """Retention: deletes the host folders of sandboxes that ended over `older_than_s` ago.

    The row is marked first, so a crash mid-delete leaves a record that says "deleted",
    never one that offers half-deleted artifacts. Records and logs are kept.
    """
    if older_than_s < 0:
        raise invalid_field("older_than", "must not be negative")
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    terminal = [s.value for s in TERMINAL_STATES]
    with sessions() as session:
        expired = [
            (row.id, row.layout_root)
            for row in session.scalars(
                select(SandboxRow).where(
                    SandboxRow.state.in_(terminal),
                    SandboxRow.finished_at < cutoff,
                    SandboxRow.artifacts_deleted_at.is_(None),
                )
            )
        ]
    removed = []
    for sandbox_id, root in expired:
        with sessions.begin() as session:
            store.transition(
                session,
                sandbox_id,
                None,
                {"artifacts_deleted_at": datetime.now(UTC)},
                states=TERMINAL_STATES,
            )
        remove_tree(Path(root))
        removed.append(sandbox_id)
    return removed
