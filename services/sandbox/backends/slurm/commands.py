"""Slurm's command-line tools (sbatch, squeue, scancel), run without a shell.

They read the cluster from SLURM_CONF or /etc/slurm, as any Slurm user's tools do. A tool
that fails is an engine error: the scheduler, not the agent, failed.
"""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import dataclass

from services.sandbox.backends.base import BackendError

# How long one command may take before the controller is taken for unresponsive.
COMMAND_TIMEOUT_S = 60.0
# squeue's states of a job that no longer runs or waits.
ENDED_STATES = frozenset(
    {
        "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
        "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT",
    }
)  # fmt: skip
# Reasons a pending job gives when the cluster, as configured, can never start it as
# submitted (more CPUs, memory or GPUs than any node of the partition has, a time limit over
# the partition's, an account or QOS that does not exist). Slurm keeps such a job queued
# unless EnforcePartLimits refused it at submission.
NEVER_STARTS = frozenset(
    {"BadConstraints", "PartitionConfig", "PartitionTimeLimit", "InvalidAccount", "InvalidQOS"}
)
# The name last: a job name may contain the separator.
_FIELDS = "%i|%T|%r|%k|%j"


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    state: str
    # Why a pending job waits (squeue's %r).
    reason: str
    comment: str
    name: str

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    @property
    def never_starts(self) -> bool:
        return self.state == "PENDING" and self.reason in NEVER_STARTS


async def run(*argv: str) -> str:
    """The tool's standard output; a BackendError with its message when it fails."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise BackendError(f"{argv[0]} could not be run: {exc.strerror}") from exc
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise BackendError(f"{argv[0]} did not answer within {COMMAND_TIMEOUT_S:g}s") from exc
    if process.returncode != 0:
        message = err.decode(errors="replace").strip()[-500:]
        raise BackendError(f"{argv[0]} failed (exit {process.returncode}): {message}")
    return out.decode(errors="replace")


async def submit(script: str, options: list[str]) -> str:
    """sbatch: the new job's id."""
    out = await run("sbatch", "--parsable", *options, script)
    job_id = out.strip().split(";")[0]
    if not job_id.isdigit():
        raise BackendError(f"sbatch answered no job id: {out.strip()[:200]!r}")
    return job_id


# Slurm's reasons for refusing a job that can never run as asked: the caller's to change.
# Any other refusal (a controller away, a full queue, a QOS's momentary limit) may pass.
_PERMANENT = (
    "Requested node configuration is not available",
    "Invalid partition name specified",
    "Invalid account or account/partition combination specified",
    "Invalid qos specification",
    "Requested time limit is invalid",
    "Invalid generic resource (gres) specification",
    "Invalid feature specification",
)


class Refused(Exception):
    """Slurm will not take a job as asked (no node or partition can hold it)."""


async def test_submission(options: list[str]) -> None:
    """sbatch --test-only: whether Slurm would take the job (no job is made). Raises
    Refused when it never would, and BackendError when it cannot say now."""
    try:
        await run("sbatch", "--test-only", "--wrap=true", *options)
    except BackendError as exc:
        message = str(exc)
        permanent = next((reason for reason in _PERMANENT if reason in message), None)
        if permanent is None:
            raise
        raise Refused(permanent) from exc


def _parse(out: str) -> list[QueuedJob]:
    jobs = []
    for line in out.splitlines():
        parts = line.split("|", 4)
        if len(parts) == 5:
            jobs.append(QueuedJob(*parts))
    return jobs


async def job(job_id: str) -> QueuedJob | None:
    """The job as squeue knows it; None once the controller has forgotten it, or for no id
    (a submission that never got one)."""
    if not job_id:
        return None
    try:
        out = await run("squeue", "--noheader", "--states=all", f"--jobs={job_id}", f"-o{_FIELDS}")
    except BackendError as exc:
        if "Invalid job id" in str(exc):
            return None
        raise
    found = [j for j in _parse(out) if j.job_id == job_id]
    return found[0] if found else None


class JobBoard:
    """One squeue of this user's jobs, at most every `max_age_s`, answers every sandbox's
    look at its job: a squeue per sandbox per poll would load the controller with one RPC
    per running sandbox per second."""

    def __init__(self, max_age_s: float) -> None:
        self._max_age_s = max_age_s
        self._jobs: dict[str, QueuedJob] = {}
        self._error: BackendError | None = None
        self._at = -math.inf
        self._lock = asyncio.Lock()

    async def job(self, job_id: str) -> QueuedJob | None:
        """As job(job_id), from a listing at most max_age_s old."""
        if not job_id:
            return None
        async with self._lock:
            now = asyncio.get_running_loop().time()
            if now - self._at >= self._max_age_s:
                self._at = now
                try:
                    out = await run(
                        "squeue", "--noheader", "--states=all", f"--user={os.getuid()}",
                        f"-o{_FIELDS}",
                    )  # fmt: skip
                    self._jobs, self._error = {j.job_id: j for j in _parse(out)}, None
                except BackendError as exc:
                    # Every caller hears of it; none asks again before max_age_s.
                    self._jobs, self._error = {}, exc
            if self._error is not None:
                raise self._error
            found = self._jobs.get(job_id)
        # Submitted after the listing, or forgotten by the controller: asked about alone.
        return found if found is not None else await job(job_id)


async def jobs_named(prefix: str) -> list[QueuedJob]:
    """Every job of this user the controller still knows whose name starts with `prefix`:
    any cluster user may name a job, and set its comment, as they like."""
    out = await run("squeue", "--noheader", "--states=all", f"--user={os.getuid()}", f"-o{_FIELDS}")
    return [j for j in _parse(out) if j.name.startswith(prefix)]


async def cancel(job_id: str, *, signal: str = "", batch_only: bool = False) -> None:
    """scancel: without a signal, ends the job (queued or running); an already ended job
    is no error."""
    options = [f"--signal={signal}"] if signal else []
    if batch_only:
        options.append("--batch")
    try:
        await run("scancel", *options, job_id)
    except BackendError as exc:
        if "already completing" in str(exc) or "Invalid job id" in str(exc):
            return
        raise
