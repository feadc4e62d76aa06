"""Reading files beneath an import folder without following a single link.

A competition folder comes from outside the registry (a checkout, a download, a lab's
upload). A link anywhere in it (description.md -> /etc/shadow, a linked public/ folder)
would put a host file into the registry, and from there into every lab's hands. So below
the folder the operator named, every path component is opened relative to its parent's
descriptor with O_NOFOLLOW, and only regular files and real folders are accepted. Links
are refused, not followed, and errors never quote what a link points to or contains.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from services.common.errors import InvalidArgumentError

COPY_CHUNK_BYTES = 1 << 20
# Text files the importers read whole (descriptions, configs, leaderboards).
MAX_TEXT_BYTES = 64 << 20

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)


def link_refused(shown: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{shown} is a symbolic link; links are refused anywhere in a competition folder",
        reason="SYMLINK_REFUSED",
        metadata={"file": shown},
    )


def not_regular(shown: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{shown} is not a regular file or folder (devices, sockets and pipes are refused)",
        reason="NOT_A_REGULAR_FILE",
        metadata={"file": shown},
    )


def _parts(relative: str | PurePosixPath) -> list[str]:
    parts = [p for p in PurePosixPath(relative).parts if p not in ("", ".")]
    if any(p == ".." or p.startswith("/") for p in parts):
        raise InvalidArgumentError(
            f"{relative} must be a plain relative path", reason="PATH_INVALID"
        )
    return parts


def _open_component(parent_fd: int, name: str, shown: str, *, directory: bool) -> int | None:
    """Opens `name` in `parent_fd`: None when missing; refuses links and special files."""
    try:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise link_refused(shown)
    if directory and not stat.S_ISDIR(info.st_mode):
        return None
    if not directory and stat.S_ISDIR(info.st_mode):
        return None
    if not directory and not stat.S_ISREG(info.st_mode):
        raise not_regular(shown)
    try:
        fd = os.open(name, _DIR_FLAGS if directory else _FILE_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        # Swapped for a link between the stat and the open.
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise link_refused(shown) from None
        raise
    # Swapped for something else between the stat and the open.
    kind = os.fstat(fd).st_mode
    if (directory and not stat.S_ISDIR(kind)) or (not directory and not stat.S_ISREG(kind)):
        os.close(fd)
        raise not_regular(shown)
    return fd


def open_beneath(
    base: Path, relative: str | PurePosixPath, *, directory: bool = False
) -> int | None:
    """A descriptor of base/relative, reached without following links below `base`.

    None when it does not exist (or is a folder where a file is wanted, and the reverse).
    `base` itself is the operator's choice and is opened as given.
    """
    parts = _parts(relative)
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        for depth, name in enumerate(parts):
            last = depth == len(parts) - 1
            shown = "/".join(parts[: depth + 1])
            child = _open_component(fd, name, shown, directory=directory or not last)
            os.close(fd)
            fd = -1
            if child is None:
                return None
            fd = child
        result, fd = fd, -1
        return result
    finally:
        if fd >= 0:
            os.close(fd)


def is_file_beneath(base: Path, relative: str | PurePosixPath) -> bool:
    """Whether base/relative is a regular file reached without links (a link raises)."""
    fd = open_beneath(base, relative)
    if fd is None:
        return False
    os.close(fd)
    return True


def is_dir_beneath(base: Path, relative: str | PurePosixPath) -> bool:
    fd = open_beneath(base, relative, directory=True)
    if fd is None:
        return False
    os.close(fd)
    return True


def read_bytes_beneath(
    base: Path, relative: str | PurePosixPath, *, limit: int = MAX_TEXT_BYTES
) -> bytes | None:
    """The bytes of a regular file below `base`, None when missing; links are refused."""
    fd = open_beneath(base, relative)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidArgumentError(
            f"{relative} is larger than {limit} bytes",
            reason="FILE_TOO_LARGE",
            metadata={"file": str(relative)},
        )
    return data


def read_text_beneath(
    base: Path, relative: str | PurePosixPath, *, limit: int = MAX_TEXT_BYTES
) -> str | None:
    """UTF-8 text of a regular file below `base`, None when missing; links are refused."""
    data = read_bytes_beneath(base, relative, limit=limit)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(
            f"{relative} is not UTF-8 text (invalid byte at offset {exc.start})",
            reason="NOT_UTF8",
            metadata={"file": str(relative)},
        ) from None


@dataclass(frozen=True)
class CopiedFile:
    path: str  # relative, "/"-separated
    size_bytes: int
    sha256: str
    md5: str  # MLE-bench's checksums are MD5


def copy_tree_beneath(
    base: Path, relative: str | PurePosixPath, target: Path
) -> dict[str, CopiedFile]:
    """Copies every regular file under base/relative into `target`, hashing as it goes.

    Every link below `base`, at any depth, is refused, and so is anything but regular files
    and folders. A missing folder copies nothing.
    """
    fd = open_beneath(base, relative, directory=True)
    copied: dict[str, CopiedFile] = {}
    if fd is None:
        return copied
    prefix = "/".join(_parts(relative))
    try:
        _copy_dir(fd, "", prefix, target, copied)
    finally:
        os.close(fd)
    return copied


def _copy_dir(
    dir_fd: int, inside: str, prefix: str, target: Path, copied: dict[str, CopiedFile]
) -> None:
    # scandir works on its own duplicate of the descriptor and leaves this one open.
    with os.scandir(dir_fd) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        relative = f"{inside}/{name}" if inside else name
        shown = f"{prefix}/{relative}" if prefix else relative
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            raise link_refused(shown)
        if stat.S_ISDIR(info.st_mode):
            child = _open_component(dir_fd, name, shown, directory=True)
            if child is None:
                continue
            try:
                _copy_dir(child, relative, prefix, target, copied)
            finally:
                os.close(child)
            continue
        child = _open_component(dir_fd, name, shown, directory=False)
        if child is None:
            continue
        copied[relative] = _copy_fd(child, target / relative, relative)


def _copy_fd(fd: int, target: Path, relative: str) -> CopiedFile:
    target.parent.mkdir(parents=True, exist_ok=True)
    sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with os.fdopen(fd, "rb") as src, target.open("wb") as dst:
        while chunk := src.read(COPY_CHUNK_BYTES):
            sha256.update(chunk)
            md5.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    return CopiedFile(relative, size, sha256.hexdigest(), md5.hexdigest())
