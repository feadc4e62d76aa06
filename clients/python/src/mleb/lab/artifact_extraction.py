"""Unpacking a sandbox's artifact archive into a run folder.

The archive holds what an agent wrote, so it is read as hostile. Debian 12's Python (3.11.2)
has no tarfile extraction filters, so nothing here relies on them and it behaves the same on
every supported version: every member is checked before anything is written; only regular
files and folders under submission/, logs/ and code/ are accepted; each file is written
through a descriptor opened with O_NOFOLLOW under folders created here, with fixed modes.
No link, device, owner or setuid bit from the archive reaches the disk.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from mleb.lab.records import RUN_SUBDIRS

# Names longer than these cannot be written on the lab's disk (ENAMETOOLONG): refused up
# front rather than failing half-way.
_MAX_NAME_BYTES = 255
_MAX_PATH_BYTES = 4000
_FILE_MODE = 0o644
_DIR_MODE = 0o755
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeArchive(Exception):
    pass


def _checked_parts(member: tarfile.TarInfo) -> tuple[str, ...]:
    name = member.name
    # The raw spelling, not a normalised one: our own archives never hold "." or "//".
    parts = tuple(name.split("/"))
    if parts[0] not in RUN_SUBDIRS or any(part in ("", ".", "..") for part in parts):
        raise UnsafeArchive(f"artifact {name[:200]!r} is outside {', '.join(RUN_SUBDIRS)}")
    encoded = [os.fsencode(part) for part in parts]
    if sum(len(part) + 1 for part in encoded) > _MAX_PATH_BYTES or any(
        len(part) > _MAX_NAME_BYTES for part in encoded
    ):
        raise UnsafeArchive(f"artifact {name[:200]!r}... has a name too long to write")
    if not (member.isreg() or member.isdir()):
        raise UnsafeArchive(f"artifact {name!r} is not a plain file or folder")
    # A sparse member's map may describe a file far larger than the archive.
    if member.issparse():
        raise UnsafeArchive(f"artifact {name!r} is a sparse file")
    return parts


def _fresh_folder(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(mode=_DIR_MODE, parents=True)


def extract_artifacts(archive: Path, run_dir: Path) -> None:
    """Replaces the run folder's submission/, logs/ and code/ with the archive's."""
    with tarfile.open(archive, "r:") as tar:
        planned = [(_checked_parts(member), member) for member in tar.getmembers()]
        for name in RUN_SUBDIRS:
            _fresh_folder(run_dir / name)
        for parts, member in planned:
            target = run_dir.joinpath(*parts)
            try:
                if member.isdir():
                    target.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    raise UnsafeArchive(f"artifact {member.name!r} has no body")
                with source, os.fdopen(os.open(target, _OPEN_FLAGS, _FILE_MODE), "wb") as out:
                    shutil.copyfileobj(source, out)
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
                # A name used both as a file and as a folder.
                raise UnsafeArchive(f"artifact {member.name!r} clashes with another") from exc
