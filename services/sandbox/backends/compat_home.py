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

# Upstream adds a+rw; folders also get a+x here, since the owner becomes root on the way back.
_FOLDER_BITS = 0o777
_FILE_BITS = 0o666


def _spool(chunks: Iterable[bytes], max_bytes: int) -> IO[bytes]:
    raw = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    total = 0
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > max_bytes:
                raise BackendError(
                    f"compat mode copies the image's /home to make it writable, and this "
                    f"image's /home is over the {max_bytes}-byte cap; move large files "
                    f"out of /home",
                    reason="IMAGE_UNSUPPORTED",
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
    dropped, so writing the archive back never touches them. Only folders, regular files
    and links (which the engine resolves inside the container) are kept; setuid, setgid and
    sticky bits are dropped.
    """
    skip = frozenset(path.strip("/") for path in mounts)
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    try:
        with (
            _spool(chunks, max_bytes) as raw,
            tarfile.open(fileobj=raw, mode="r:") as source,
            tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as target,
        ):
            for member in source:
                if _excluded(member.name, skip):
                    continue
                if member.isdir():
                    member.mode = _FOLDER_BITS
                elif member.isreg():
                    member.mode = (member.mode & 0o111) | _FILE_BITS
                elif not (member.issym() or member.islnk()):
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
