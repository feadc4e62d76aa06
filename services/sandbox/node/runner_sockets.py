"""The node runner's sockets folder, in the node's temporary directory: a Unix socket does not
cross hosts through a shared filesystem, and its path must stay short.

A runner holds an flock on its folder for as long as it lives, and removes the folder when it
ends. One killed outright (the OOM killer, Slurm's SIGKILL after its grace) cannot, and its
lock goes with it: each runner, before it makes its own, removes the folders whose lock nobody
holds. The sweep holds the lock it took until the folder is gone, and a runner checks, once it
holds its lock, that its folder is still there, so a sweep can never take a live one. Only
real folders of this user with the runner's prefix are looked at, never through a link.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "mleb-runner-"
_CLAIM_ATTEMPTS = 8
_OPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SocketsFolder:
    """A folder of this runner's, locked until `remove()`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def claim(cls, sandbox_id: str, parent: Path | None = None) -> SocketsFolder:
        """Sweeps abandoned folders, then makes and locks a fresh one."""
        parent = Path(parent or tempfile.gettempdir())
        sweep_abandoned(parent)
        for _ in range(_CLAIM_ATTEMPTS):
            path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{sandbox_id}-", dir=parent))
            try:
                fd = os.open(path, _OPEN_FLAGS)
            except FileNotFoundError:  # swept before it was locked: make another
                continue
            if _lock(fd) and _still_at(path, fd):
                return cls(path, fd)
            os.close(fd)
        raise OSError(f"no sockets folder could be kept in {parent}: others keep removing them")

    def remove(self) -> None:
        """Removes the folder, then lets go of its lock. Idempotent."""
        if self._fd < 0:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = -1


def sweep_abandoned(parent: Path) -> None:
    """Removes the runner folders in `parent` whose lock nobody holds."""
    for path in parent.glob(f"{PREFIX}*"):
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError:  # a link, not a folder, or gone
            continue
        try:
            if os.fstat(fd).st_uid == os.geteuid() and _lock(fd) and _still_at(path, fd):
                shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _still_at(path: Path, fd: int) -> bool:
    """The folder open as `fd` is still the one at `path` (a sweep removes by name)."""
    with contextlib.suppress(FileNotFoundError):
        here, held = os.lstat(path), os.fstat(fd)
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
    return False
