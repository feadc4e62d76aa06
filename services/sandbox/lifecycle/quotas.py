"""Disk quotas: what a sandbox may leave on the host's disk, and the watchdog that enforces it.

A sandbox writes to the host's disk in three places:
- /tmp: a tmpfs of resources.tmp_bytes inside the memory limit (docker backend). The kernel
  refuses writes past its size, and its pages are charged to the memory cgroup, so /tmp never
  reaches the disk and cannot outgrow the memory budget.
- The output folders (submission/, logs/, code/): host bind mounts.
- The container's writable layer: everything else the agent writes outside its mounts.

Overlay2's `size` option needs xfs with project quotas under /var/lib/docker; where the
engine's storage is on ext4 (as on the machines this runs on now), nothing in the kernel bounds
the last two. The watchdog measures them every disk_check_interval_s and, once together they
pass resources.disk_bytes (or the output folders hold more than max_output_entries files),
records a FAILED stop intent with DISK_QUOTA_EXCEEDED; the supervisor then stops the agent.
An agent may overshoot the quota by what it writes in one interval; docs/sandbox.md says how
to make the limit hard with xfs project quotas.

Output files are counted at the larger of their apparent size (st_size) and their allocated
size (st_blocks * 512), so a sparse file costs what an archive of it would hold: the archive
cap is on apparent sizes, and whatever fits the quota fits that. Every path is counted, so
hard links count once per name, as an archive would hold them. Links are never followed:
the walk descends through directory descriptors opened with O_NOFOLLOW.
"""

from __future__ import annotations

import enum
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from services.sandbox.backends.base import Capabilities, HostLayout

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class DiskEnforcement(enum.StrEnum):
    """How a sandbox's disk quota is enforced (the proto's DiskEnforcement names)."""

    WATCHDOG = "WATCHDOG"
    WATCHDOG_OUTPUTS_ONLY = "WATCHDOG_OUTPUTS_ONLY"


@dataclass(frozen=True)
class OutputsSize:
    bytes: int
    entries: int


def charged_size(info: os.stat_result) -> int:
    """What one file costs against the quota: sparse files cost their apparent size."""
    return max(info.st_size, info.st_blocks * 512)


def outputs_size(layout: HostLayout, stop_after_entries: int = 0) -> OutputsSize:
    """The output folders' charged size and entry count; stops counting entries (not bytes
    already found) past `stop_after_entries` when it is set, as that is a failure anyway."""
    total = entries = 0
    for folder in (layout.submission_dir, layout.logs_dir, layout.code_dir):
        if stop_after_entries and entries > stop_after_entries:
            break
        size, count = _tree_size(folder, stop_after_entries and stop_after_entries + 1 - entries)
        total += size
        entries += count
    return OutputsSize(total, entries)


def _tree_size(root: Path, entry_limit: int) -> tuple[int, int]:
    try:
        top = os.open(root, _DIR_FLAGS)
    except OSError:  # not there (yet), or replaced by a link: nothing of ours to count
        return 0, 0
    total = entries = 0
    pending = [top]
    try:
        while pending:
            fd = pending.pop()
            try:
                with os.scandir(fd) as listing:
                    for entry in listing:
                        entries += 1
                        try:
                            info = entry.stat(follow_symlinks=False)
                        except OSError:  # removed meanwhile
                            continue
                        total += charged_size(info)
                        if stat.S_ISDIR(info.st_mode):
                            try:
                                pending.append(os.open(entry.name, _DIR_FLAGS, dir_fd=fd))
                            except OSError:  # removed, or swapped for a link meanwhile
                                continue
                        if entry_limit and entries >= entry_limit:
                            return total, entries
            except OSError:
                continue
            finally:
                os.close(fd)
    finally:
        for fd in pending:
            os.close(fd)
    return total, entries


def enforcement(capabilities: Capabilities) -> DiskEnforcement:
    """Only an image's container has a writable layer the engine measures."""
    return (
        DiskEnforcement.WATCHDOG
        if capabilities.needs_image
        else DiskEnforcement.WATCHDOG_OUTPUTS_ONLY
    )


def exceeded(
    outputs: OutputsSize, layer_bytes: int, quota_bytes: int, max_entries: int
) -> str | None:
    """Why the sandbox is over its disk quota, or None."""
    used = outputs.bytes + layer_bytes
    if used > quota_bytes:
        return (
            f"disk quota of {quota_bytes} bytes exceeded: {used} bytes written "
            f"({outputs.bytes} in /home/submission, /home/logs and /home/code, "
            f"{layer_bytes} elsewhere outside /tmp)"
        )
    if max_entries and outputs.entries > max_entries:
        return (
            f"disk quota exceeded: more than {max_entries} files and folders in "
            f"/home/submission, /home/logs and /home/code"
        )
    return None
