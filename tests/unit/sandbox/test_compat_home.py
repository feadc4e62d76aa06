"""Compat mode's /home rewrite, on archives shaped as the engine returns them."""

from __future__ import annotations

import io
import tarfile

import pytest

from services.sandbox.backends.base import BackendError
from services.sandbox.backends.docker.compat_home import writable_home

MOUNTS = ["/home/data", "/home/submission", "/home/instructions.txt"]


def _home(*members: tuple[str, bytes, str, int]) -> list[bytes]:
    """(name, data, kind, mode) with kind one of dir, file, sym:<target>, hard:<target>."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, kind, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind.startswith("sym:"):
                info.type, info.linkname = tarfile.SYMTYPE, kind[4:]
            elif kind.startswith("hard:"):
                info.type, info.linkname = tarfile.LNKTYPE, kind[5:]
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return [buffer.getvalue()]


def _members(out) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=out) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_modes_widen_setuid_goes_and_mounts_are_left_out():
    chunks = _home(
        ("home", b"", "dir", 0o755),
        ("home/agent", b"", "dir", 0o700),
        ("home/agent/start.sh", b"echo hi\n", "file", 0o755),
        ("home/agent/suid", b"x", "file", 0o4755),
        ("home/agent/suid-again", b"", "hard:home/agent/suid", 0o4755),
        ("home/submission", b"", "dir", 0o755),
        ("home/submission/planted", b"x", "file", 0o644),
        ("home/instructions.txt", b"old", "file", 0o644),
    )
    with writable_home(chunks, MOUNTS, 1 << 20) as out:
        members = _members(out)
    assert members["home/agent"].mode == 0o777
    assert members["home/agent/start.sh"].mode == 0o777
    assert members["home/agent/suid"].mode & 0o6000 == 0
    assert members["home/agent/suid-again"].mode & 0o6000 == 0  # hard links set modes too
    assert not {"home/submission", "home/submission/planted", "home/instructions.txt"} & set(
        members
    )


@pytest.mark.parametrize(
    "member",
    [
        ("home/submission", b"", "sym:elsewhere", 0o777),  # the mount would land elsewhere
        ("home/instructions.txt", b"", "sym:/etc/passwd", 0o777),
        ("home", b"", "sym:/tmp", 0o777),
    ],
    ids=lambda m: m[0],
)
def test_a_link_that_would_move_a_mount_is_refused(member):
    with pytest.raises(BackendError) as err:
        writable_home(_home(member), MOUNTS, 1 << 20)
    assert err.value.reason == "IMAGE_UNSUPPORTED"


def test_a_home_over_the_cap_is_refused():
    with pytest.raises(BackendError) as err:
        writable_home(_home(("home/big", b"x" * 4096, "file", 0o644)), MOUNTS, 1024)
    assert err.value.reason == "IMAGE_UNSUPPORTED"
