"""The node runner's sockets folder, in the node's temporary directory: a Unix socket does not
cross hosts through a shared filesystem, and its path must stay short.

    <tmp>/mleb-runner-<node>-<sandbox id>-XXXXXXXX/           0o700, locked (flock) by its runner
    <tmp>/mleb-runner-<node>-<sandbox id>-XXXXXXXX/sockets/   the endpoints' sockets

The outer folder is closed to everyone else: /tmp can be listed by any user of the node, so
the inner folder's name is no secret. The Docker engine, as root, still mounts the inner one
into the sidecar.

A runner holds an flock on its folder for as long as it lives, and removes the folder when it
ends. One killed outright (the OOM killer, Slurm's SIGKILL after its grace) cannot, and its
lock goes with it: each runner, once it holds its own folder, removes the folders of its node
whose lock nobody holds. The sweep holds the lock it took until the folder is gone, and a
runner checks, once it holds its lock, that its folder is still there, so a sweep can never
take a live one. Only real folders of this user, with this node's name in them, are looked
at, never through a link: flock on a shared filesystem only excludes the node's own
processes, so another node's folder must never look abandoned. Where the filesystem has no
locks, folders are kept unlocked and never swept, as before there was a sweep.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import structlog

log = structlog.get_logger("mleb.node_runner")

PREFIX = "mleb-runner-"
SOCKETS = "sockets"
_CLAIM_ATTEMPTS = 8
_OPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def node_prefix() -> str:
    """The folder names of this node's runners: the host name, hashed to a short safe tag."""
    tag = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    return f"{PREFIX}{tag}-"


class SocketsFolder:
    """A folder of this runner's, locked until `remove()`; the sockets go in `sockets`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.sockets = path / SOCKETS
        self._fd = fd

    @classmethod
    def claim(cls, sandbox_id: str, parent: Path | None = None) -> SocketsFolder:
        """Makes and locks a fresh folder, then sweeps the node's abandoned ones."""
        parent = Path(parent or tempfile.gettempdir())
        _check_parent(parent)
        folder = cls._make(sandbox_id, parent)
        try:
            sweep_abandoned(parent)
        except OSError as exc:  # the sweep is housekeeping: never a reason not to start
            log.warning("runner_sockets_sweep_failed", error=str(exc))
        return folder

    @classmethod
    def _make(cls, sandbox_id: str, parent: Path) -> SocketsFolder:
        for _ in range(_CLAIM_ATTEMPTS):
            path = Path(tempfile.mkdtemp(prefix=f"{node_prefix()}{sandbox_id}-", dir=parent))
            try:
                fd = os.open(path, _OPEN_FLAGS)
            except FileNotFoundError:  # swept before it was locked: make another
                continue
            locked = _lock(fd)
            if locked is None:
                log.warning("runner_sockets_unlocked", folder=str(path))
                return cls(path, fd)
            if locked and _still_at(path, fd):
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
    """Removes this node's runner folders in `parent` whose lock nobody holds."""
    for path in parent.glob(f"{node_prefix()}*"):
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError:  # a link, not a folder, or gone
            continue
        try:
            if os.fstat(fd).st_uid == os.geteuid() and _lock(fd) and _still_at(path, fd):
                shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


def _check_parent(parent: Path) -> None:
    """Anyone may rename folders in a world-writable parent that is not sticky, so a folder
    checked there could be swapped before its removal."""
    mode = os.stat(parent).st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        raise OSError(f"{parent} is writable by everyone but not sticky: set its sticky bit")


def _lock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: the filesystem has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _still_at(path: Path, fd: int) -> bool:
    """The folder open as `fd` is still the one at `path` (a sweep removes by name)."""
    with contextlib.suppress(FileNotFoundError):
        here, held = os.lstat(path), os.fstat(fd)
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
    return False
