"""MLE-bench compat mode's writable /home, prepared outside the container.

MLE-bench's entrypoint runs as root inside the agent's image and makes /home writable for
its `nonroot` user. Running any of the image's programs with privilege hands the image root
(a trojaned `find` did exactly that), so the service does the same work from outside: it
reads the image's own /home as a tar stream from a container that never starts, widens the
modes in that stream, and the engine writes it back into the agent's container before it
starts. Nothing from the image runs, and the sandbox's mounts are left out.
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterable
from typing import IO

from services.sandbox.backends.base import BackendError

# More entries than this in the image's /home are refused (tarfile keeps each in memory).
MAX_ENTRIES = 100_000
# Upstream adds a+rw; folders also get a+x here, since the owner becomes root on the way back.
_FOLDER_BITS = 0o777
_FILE_BITS = 0o666


def _unsupported(what: str) -> BackendError:
    return BackendError(
        f"compat mode cannot prepare this image's /home: {what}", reason="IMAGE_UNSUPPORTED"
    )


def _spool(chunks: Iterable[bytes], max_bytes: int) -> IO[bytes]:
    raw = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    total = 0
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > max_bytes:
                raise _unsupported(
                    f"it is over the {max_bytes}-byte cap for the copy that makes it "
                    f"writable; move large files out of /home"
                )
            raw.write(chunk)
    except BaseException:
        raw.close()
        raise
    raw.seek(0)
    return raw


def _excluded(name: str, mounts: frozenset[str]) -> bool:
    return any(name == mount or name.startswith(mount + "/") for mount in mounts)


def writable_home(chunks: Iterable[bytes], mounts: Iterable[str], max_bytes: int) -> IO[bytes]:
    """The archive of /home (as the engine's GET archive returns it) with widened modes.

    `mounts` are absolute container paths the sandbox mounts over; their image content is
    dropped, so writing the archive back never touches them, and an image where a mount
    point or a folder above it is anything but a folder (a link would move the mount) is
    refused. Only folders, regular files and links (which the engine resolves inside the
    container) are kept; setuid, setgid and sticky bits are dropped, hard links included.
    """
    skip = frozenset(path.strip("/") for path in mounts)
    # The folders on the way to a mount point must be folders; a mount point itself may be
    # absent, a folder or a file, but never a link: either would move the mount.
    above = {"/".join(p.split("/")[: i + 1]) for p in skip for i in range(p.count("/"))}
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    try:
        with (
            _spool(chunks, max_bytes) as raw,
            tarfile.open(fileobj=raw, mode="r:") as source,
            tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as target,
        ):
            for count, member in enumerate(source):
                if count >= MAX_ENTRIES:
                    raise _unsupported(f"over {MAX_ENTRIES} entries")
                if (member.name in above and not member.isdir()) or (
                    member.name in skip and (member.issym() or member.islnk())
                ):
                    raise _unsupported(f"/{member.name} would move one of the sandbox's mounts")
                if _excluded(member.name, skip):
                    continue
                if member.isdir():
                    member.mode = _FOLDER_BITS
                elif member.isreg() or member.islnk():  # a link entry sets its file's mode
                    member.mode = (member.mode & 0o111) | _FILE_BITS
                elif not member.issym():
                    continue
                target.addfile(member, source.extractfile(member) if member.isreg() else None)
    except tarfile.TarError as exc:
        out.close()
        raise BackendError(f"the image's /home could not be read: {exc}") from exc
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out
