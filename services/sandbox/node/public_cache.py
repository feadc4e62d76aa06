"""The node's cache of sealed public data: entries, the sandboxes that use them, LRU eviction.

    <root>/<competition>/<key>/                   a sealed entry: mounted read-only as /home/data
    <root>/<competition>/.download-*/             a fetch in progress, or left by one that died
    <root>/<competition>/.download-*.lock         held (flock) by the fetching process
    <root>/.state/<competition>/<key>/size        the entry's bytes; its mtime is the last use
    <root>/.state/<competition>/<key>/pins/<id>   a sandbox that uses the entry
    <root>/.state/lock                            held (flock) while pins are taken or entries go
    <root>/.trash/*/                              evicted entries, deleted outside the lock

A fetch holds its folder's lock file until it ends; flocks go with their process, so a folder
whose lock nobody holds was left by a crash, and eviction sweeps it (with anything a crash left
in `.trash`). Pins live on disk, so they survive a service restart. A pin counts while the
database says its sandbox is not terminal (the `live` callback), so a sandbox that ended while
the service was down releases its entry without anyone removing the pin. Nothing outside an
entry's own folder is ever mounted, so the agent never sees the state.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("mleb.sandbox")

# Given sandbox ids, those that are still active (pending or running) anywhere.
ActiveSandboxes = Callable[[Iterable[str]], set[str]]


_STAGING_PREFIX = ".download-"
_LOCK_SUFFIX = ".lock"


def _lock_of(folder: Path) -> Path:
    return folder.with_name(folder.name + _LOCK_SUFFIX)


def _staging_leftovers(folder: Path) -> list[Path]:
    """A staging folder and what is named after it (a publish's scratch), not its lock."""
    lock = _lock_of(folder)
    named_after = folder.parent.glob(glob.escape(folder.name) + ".*")
    return [folder, *(path for path in named_after if path != lock)]


class Staging:
    """A fetch's folder beside the entries, and the lock file that says its fetch is alive.

    `close()` removes the folder (already gone once sealed) and anything named after it,
    then the lock file."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd

    def close(self) -> None:
        if self._lock_fd < 0:
            return
        for left in _staging_leftovers(self.path):
            shutil.rmtree(left, ignore_errors=True)
        _lock_of(self.path).unlink(missing_ok=True)
        os.close(self._lock_fd)
        self._lock_fd = -1

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class CacheEntry:
    competition_id: str
    key: str
    path: Path
    size_bytes: int
    last_used: float
    pinned_by: frozenset[str]


def _tree_bytes(path: Path) -> int:
    total = 0
    for current, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(current, name)).st_size
    return total


def _move(source: Path, target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # a concurrent delete finished it first
        source.rename(target)


class PublicCache:
    def __init__(self, root: Path, max_bytes: int = 0, live: ActiveSandboxes | None = None) -> None:
        self.root = root
        # 0: no limit.
        self.max_bytes = max_bytes
        # Without a database every pin counts (tests, tools).
        self._live = live or (lambda ids: set(ids))
        self._state = root / ".state"
        self._trash = root / ".trash"
        self._thread_lock = threading.Lock()

    def entry(self, competition_id: str, key: str) -> Path:
        return self.root / competition_id / key

    def _state_dir(self, competition_id: str, key: str) -> Path:
        return self._state / competition_id / key

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One holder per node: threads of this process, and other processes on the node."""
        self._state.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, (self._state / "lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def staging(self, competition_id: str) -> Staging:
        """A folder for a fetch of the competition's public data; the caller closes it."""
        parent = self.root / competition_id
        parent.mkdir(parents=True, exist_ok=True)
        # Under the cache lock, so no sweep sees the lock file before it is held.
        with self._locked():
            fd, lock_path = tempfile.mkstemp(
                prefix=_STAGING_PREFIX, suffix=_LOCK_SUFFIX, dir=parent
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                folder = Path(lock_path).with_suffix("")
                folder.mkdir(mode=0o700)
            except BaseException:
                os.unlink(lock_path)
                os.close(fd)
                raise
        return Staging(folder, fd)

    def pin(self, competition_id: str, key: str, sandbox_id: str) -> bool:
        """Marks the entry as used by the sandbox; False when there is no such entry."""
        with self._locked():
            if not self.entry(competition_id, key).is_dir():
                return False
            self._pin(competition_id, key, sandbox_id)
            return True

    def _pin(self, competition_id: str, key: str, sandbox_id: str) -> None:
        state = self._state_dir(competition_id, key)
        (state / "pins").mkdir(parents=True, exist_ok=True)
        (state / "pins" / sandbox_id).touch()
        size = state / "size"
        if not size.exists():
            size.write_text(str(_tree_bytes(self.entry(competition_id, key))))
        os.utime(size)

    def seal(self, competition_id: str, key: str, staging: Path, sandbox_id: str) -> Path:
        """Moves a verified download into place and pins it, in one step eviction cannot split."""
        final = self.entry(competition_id, key)
        with self._locked():
            try:
                staging.rename(final)
            except OSError:  # another process sealed the same content first
                if not final.is_dir():
                    raise
            self._pin(competition_id, key, sandbox_id)
        return final

    def _sweep(self, trash: Path) -> None:
        """Moves into `trash` the folders of fetches whose process died, and what earlier
        evictions left in `.trash` (a crash mid-delete, or one deleting now: a second
        delete of the same tree is harmless). Runs under the cache lock."""
        for left in self._trash.iterdir():
            if left != trash and left.is_dir() and not left.is_symlink():
                _move(left, trash / left.name)
        for competition in self._children(self.root):
            for lock in competition.glob(glob.escape(_STAGING_PREFIX) + "*" + _LOCK_SUFFIX):
                if not lock.is_symlink() and self._abandoned(lock):
                    for left in _staging_leftovers(lock.with_suffix("")):
                        _move(left, trash / f"{competition.name}.{left.name}")
                    lock.unlink(missing_ok=True)

    @staticmethod
    def _abandoned(lock: Path) -> bool:
        """Nobody holds the lock file: the fetch that made it has ended or died."""
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    def entries(self) -> list[CacheEntry]:
        found = []
        for competition in self._children(self.root):
            for entry in self._children(competition):
                state = self._state_dir(competition.name, entry.name)
                pins = frozenset(p.name for p in self._children(state / "pins", dirs=False))
                size = state / "size"
                try:
                    size_bytes, last_used = int(size.read_text()), size.stat().st_mtime
                except (OSError, ValueError):  # made before sizes were kept
                    size_bytes, last_used = _tree_bytes(entry), entry.stat().st_mtime
                found.append(
                    CacheEntry(competition.name, entry.name, entry, size_bytes, last_used, pins)
                )
        return found

    @staticmethod
    def _children(folder: Path, *, dirs: bool = True) -> list[Path]:
        try:
            listing = list(folder.iterdir())
        except FileNotFoundError:
            return []
        return [
            p
            for p in listing
            if not p.name.startswith(".") and (p.is_dir() if dirs else True) and not p.is_symlink()
        ]

    def evict(self) -> list[CacheEntry]:
        """Removes least recently used entries that no active sandbox uses, down to max_bytes.

        Pins of sandboxes that have ended are dropped on the way, and what crashed fetches
        and deletions left behind is swept.
        """
        evicted = []
        with self._locked():
            self._trash.mkdir(exist_ok=True)
            trash = Path(tempfile.mkdtemp(dir=self._trash))
            self._sweep(trash)
            entries = self.entries()
            pinned = {p for e in entries for p in e.pinned_by}
            live = self._live(pinned) if pinned else set()
            for entry in entries:
                for ended in entry.pinned_by - live:
                    pins = self._state_dir(entry.competition_id, entry.key) / "pins"
                    (pins / ended).unlink(missing_ok=True)
            total = sum(e.size_bytes for e in entries)
            for entry in sorted(entries, key=lambda e: e.last_used):
                if self.max_bytes <= 0 or total <= self.max_bytes:
                    break
                if entry.pinned_by & live:
                    continue
                entry.path.rename(trash / f"{entry.competition_id}.{entry.key}")
                shutil.rmtree(self._state_dir(entry.competition_id, entry.key), ignore_errors=True)
                total -= entry.size_bytes
                evicted.append(entry)
        # Deleting a large tree takes a while; nothing can pin what is in the trash.
        shutil.rmtree(trash, ignore_errors=True)
        for entry in evicted:
            log.info(
                "public_data_evicted",
                competition_id=entry.competition_id,
                key=entry.key,
                size_bytes=entry.size_bytes,
            )
        return evicted
