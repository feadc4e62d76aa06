"""Packing a sandbox's outputs (submission/, logs/, code/) into a tar archive, and retention.

The folders were writable by the agent, so they are read as hostile: symlinks are never
followed (nor archived), only regular files and folders go in, every file is opened with
O_NOFOLLOW, and member names are relative paths built from the walk, never taken from links.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.common.errors import QuotaViolation, ResourceExhaustedError, invalid_field
from services.sandbox import store
from services.sandbox.models import SandboxRow
from services.sandbox.states import TERMINAL_STATES

OUTPUT_DIRS = ("submission", "logs", "code")
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Archive:
    path: Path
    size_bytes: int
    sha256: str

    def chunks(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _too_big(sandbox_id: str, cap: int) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"the artifacts of sandbox {sandbox_id} exceed the {cap}-byte cap",
        reason="ARTIFACTS_TOO_LARGE",
        metadata={"sandbox_id": sandbox_id, "max_bytes": str(cap)},
        quota=[QuotaViolation(f"sandbox:{sandbox_id}/artifacts", f"at most {cap} bytes")],
    )


def _walk(top: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Folders and regular files under `top`, without following any link."""
    for current, dirs, files in os.walk(top, followlinks=False):
        base = Path(current)
        for name in sorted(dirs) + sorted(files):
            path = base / name
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
                yield path, info
        dirs.sort()


def outputs_size(root: Path) -> int:
    return sum(
        info.st_size
        for name in OUTPUT_DIRS
        if (root / name).is_dir() and not (root / name).is_symlink()
        for _path, info in _walk(root / name)
        if stat.S_ISREG(info.st_mode)
    )


def _add_file(tar: tarfile.TarFile, path: Path, arcname: str, budget: int) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):  # swapped for something else since the walk
            return 0
        if info.st_size > budget:
            raise OverflowError
        member = tarfile.TarInfo(arcname)
        member.size = info.st_size
        member.mtime = int(info.st_mtime)
        member.mode = 0o644
        tar.addfile(member, handle)
        return info.st_size


def build_archive(sandbox_id: str, root: Path, scratch_dir: Path, max_bytes: int) -> Archive:
    """Writes the archive to a scratch file; the caller streams it and then removes it."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{sandbox_id}-", suffix=".tar", dir=scratch_dir)
    os.close(fd)
    path = Path(name)
    used = 0
    try:
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for top_name in OUTPUT_DIRS:
                top = root / top_name
                folder = tarfile.TarInfo(top_name)
                folder.type, folder.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(folder)
                if top.is_symlink() or not top.is_dir():
                    continue
                for item, info in _walk(top):
                    arcname = f"{top_name}/{item.relative_to(top).as_posix()}"
                    if stat.S_ISDIR(info.st_mode):
                        member = tarfile.TarInfo(arcname)
                        member.type, member.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(member)
                    else:
                        used += _add_file(tar, item, arcname, max_bytes - used)
    except OverflowError:
        path.unlink(missing_ok=True)
        raise _too_big(sandbox_id, max_bytes) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return Archive(path, path.stat().st_size, digest.hexdigest())


def remove_tree(root: Path) -> None:
    """Deletes a sandbox's host folder; links inside are removed, never followed."""
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
