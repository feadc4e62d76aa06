"""The agent's outputs as `pod_sidecar collect` sends them (a tar), unpacked into the
sandbox's folder on the service's host. The tar is the agent's doing, read as hostile: its
members are counted first, up to a bound (TarFile holds each in memory), then
mleb.lab.artifact_extraction unpacks it into a fresh folder, which replaces the old only
once it is whole."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

from mleb.lab.artifact_extraction import UnsafeArchive, extract_artifacts
from mleb.lab.records import RUN_SUBDIRS


def count_members(archive: Path, most: int) -> int:
    """The archive's member count; UnsafeArchive past `most`."""
    count = 0
    with tarfile.open(archive, "r:") as tar:
        while tar.next() is not None:
            count += 1
            if count > most:
                raise UnsafeArchive(f"the outputs hold over {most} files and folders")
    return count


def unpack_outputs(archive: Path, root: Path, most_members: int) -> None:
    """Replaces root's submission/, logs/ and code/ with the archive's: the old three are
    moved aside before the new three move in, each by one rename."""
    if not root.is_dir():
        raise UnsafeArchive("the sandbox's folder is gone")
    count_members(archive, most_members)
    staging = Path(tempfile.mkdtemp(prefix=".collect-", dir=root))
    try:
        extract_artifacts(archive, staging / "new")
        (staging / "old").mkdir()
        for name in RUN_SUBDIRS:
            if (root / name).exists() or (root / name).is_symlink():
                (root / name).rename(staging / "old" / name)
        for name in RUN_SUBDIRS:
            (staging / "new" / name).rename(root / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
