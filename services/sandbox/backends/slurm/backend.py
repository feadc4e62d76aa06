"""The Slurm backend: each sandbox is a Slurm job that runs the node runner
(services.sandbox.node.runner), which starts the agent with the chosen node's Docker engine.

Slurm places the job, allocates its GPUs (--gres=gpu:N), enforces its time limit (as a
backstop to the service's own) and queues it while the cluster is full; the sandbox stays
PENDING until the runner reports the agent running. The service and the runner share the
job's RunnerFiles folder, and the sandbox's folders, on a filesystem every node mounts at
the same path, as Slurm clusters' home and scratch filesystems are (docs/deploy.md).

Jobs are named `mleb-<sandbox id>` and carry `mleb:<node>/<instance>` as their comment, so
reconcile finds exactly this service instance's jobs among its user's in squeue; each job's
folder records the same (job.json), for a job the controller has forgotten.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shlex
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import structlog

from services.common.errors import FailedPreconditionError, UnavailableError, invalid_field
from services.sandbox.backends.base import (
    BackendError,
    BackendProvider,
    Capabilities,
    ExitInfo,
    GpuAllocation,
    Handle,
    LaunchSpec,
    OutputLine,
    Usage,
)
from services.sandbox.backends.slurm import commands
from services.sandbox.config import SandboxSettings, seconds_setting
from services.sandbox.node.egress_proxy import EgressSums

if TYPE_CHECKING:
    from services.sandbox.records import SandboxRequest
from services.sandbox.node.runner_files import (
    MAX_LINE_BYTES,
    Ended,
    JobRecord,
    RunnerFiles,
    RunnerOptions,
    parse_output_line,
)

log = structlog.get_logger("mleb.sandbox")

T = TypeVar("T")
_COMMENT_PART = re.compile(r"[A-Za-z0-9._-]{1,64}")
JOB_PREFIX = "mleb-"
# What _job answers while squeue fails: a job that neither waits nor has ended.
UNKNOWN = commands.QueuedJob("", "UNKNOWN", "", "", "")
# A sandbox id as a job name carries it, and as it becomes a folder's name: one plain part.
_SANDBOX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
MIB = 1024 * 1024
# The job's own memory beyond the agent's: the runner and the engine client.
RUNNER_MEMORY_BYTES = 256 * MIB
# The job's time limit beyond the sandbox's: the service stops it first, Slurm as a backstop.
TIME_LIMIT_MARGIN_S = 300.0
# How long a stopped runner gets beyond the grace period before its job is killed.
STOP_MARGIN_S = 15.0
# Variables the job inherits from the service (sbatch would otherwise export them all,
# the service's secrets included): what finds Python, the runner and the node's engine.
EXPORTED = ("PATH", "PYTHONPATH", "HOME", "LANG", "DOCKER_HOST", "DOCKER_CONFIG")

CAPABILITIES = Capabilities(
    needs_image=True,
    # The agent runs in the node's Docker engine with every guarantee of the Docker backend.
    security_boundary=True,
    mounts_public_cache=True,
    gpu_allocation=GpuAllocation.SCHEDULER,
    # On the filesystem the service shares with the nodes.
    outputs_on_host=True,
    # The node runner serves them where the agent runs: a Unix socket does not cross hosts.
    endpoints_on_node=True,
)


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"MLEB_SLURM_{name}", default)


@dataclass(frozen=True)
class SlurmSettings:
    """MLEB_SLURM_* (docs/deploy.md)."""

    partition: str = ""
    # More sbatch options, e.g. "--account=lab --qos=eval".
    sbatch_args: tuple[str, ...] = ()
    # How a job starts the node runner; the job's folder is added.
    runner: tuple[str, ...] = (sys.executable, "-m", "services.sandbox.node.runner")
    # Set where the nodes' GPUs are only device files (dev_slurm.sh's stand-ins).
    gpu_device_dir: str = ""
    poll_interval_s: float = 1.0
    # The grader as the nodes reach it (the node runner serves the agent's validation
    # endpoint there), and the CA that verifies its TLS, a path on the nodes.
    grader_addr: str = ""
    client_tls_ca: str = ""
    # How long the shared filesystem may hide a file the runner wrote on its node from the
    # service (NFS caches a name's absence for up to acdirmax, 60 s by default): how long a
    # job that ended is looked at before it counts as lost.
    fs_lag_s: float = 60.0

    @classmethod
    def from_env(cls) -> SlurmSettings:
        runner = tuple(shlex.split(_env("RUNNER"))) or cls.runner
        return cls(
            partition=_env("PARTITION"),
            sbatch_args=tuple(shlex.split(_env("SBATCH_ARGS"))),
            runner=runner,
            gpu_device_dir=_env("GPU_DEVICE_DIR"),
            poll_interval_s=seconds_setting(
                "MLEB_SLURM_POLL_INTERVAL_S", cls.poll_interval_s, positive=True
            ),
            fs_lag_s=seconds_setting("MLEB_SLURM_FS_LAG_S", cls.fs_lag_s),
            grader_addr=_env("GRADER_ADDR", os.environ.get("MLEB_GRADER_ADDR", "")),
            client_tls_ca=_env("TLS_CA", os.environ.get("MLEB_TLS_CA", "")),
        )


def _raise_runner_error(ended: Ended | None) -> None:
    """The runner's own account of why the agent did not run, as a BackendError."""
    if ended is not None and ended.error:
        raise BackendError(ended.error, reason=ended.reason or "ENGINE_ERROR")


async def _read(read: Callable[[], T]) -> T:
    """A read of a job's folder, off the event loop (the shared filesystem may hang): what
    the filesystem or a damaged file raises is the engine's failure, a BackendError."""
    try:
        return await asyncio.to_thread(read)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise BackendError(f"the job's folder could not be read: {why}") from exc


class SlurmBackend:
    name = "slurm"
    capabilities = CAPABILITIES

    def __init__(self, settings: SandboxSettings, slurm: SlurmSettings) -> None:
        if not slurm.grader_addr:
            raise invalid_field(
                "MLEB_SLURM_GRADER_ADDR", "the grader's address as the nodes reach it is required"
            )
        self._jobs_dir = settings.work_dir / "slurm-jobs"
        self._slurm = slurm
        self._options = RunnerOptions(
            sidecar_image=settings.sidecar_image,
            gpu_device_dir=slurm.gpu_device_dir,
            max_output_bytes=settings.max_log_bytes,
            sample_interval_s=settings.sample_interval_s,
            grader_addr=slurm.grader_addr,
            client_tls_ca=slurm.client_tls_ca,
            egress_allow_addresses=settings.egress_allow_addresses,
            egress_max_destinations=settings.egress_max_destinations,
        )
        for name, value in (("NODE", settings.node), ("INSTANCE_ID", settings.instance_id)):
            # squeue's fields are |-separated, and the comment must read back as written.
            if not _COMMENT_PART.fullmatch(value):
                raise invalid_field(
                    f"MLEB_SANDBOX_{name}", "letters, digits, '.', '_' and '-' only on Slurm"
                )
        self._comment = f"mleb:{settings.node}/{settings.instance_id}"
        self._stop_grace_s = settings.stop_grace_s
        self._board = commands.JobBoard(slurm.poll_interval_s)

    def _files(self, sandbox_id: str) -> RunnerFiles:
        return RunnerFiles(self._jobs_dir / sandbox_id)

    # Launch

    async def launch(self, spec: LaunchSpec) -> Handle:
        # The shared filesystem may be slow or hang: never on the event loop.
        files = self._files(spec.sandbox_id)
        try:
            await asyncio.to_thread(self._prepare, spec, files)
        except OSError as exc:
            await asyncio.to_thread(shutil.rmtree, files.folder, True)
            raise BackendError(f"the job's folder could not be written: {exc.strerror}") from exc
        try:
            job_id = await commands.submit(
                str(files.folder / "job.sh"), self._sbatch_options(spec, files)
            )
        except BackendError:
            # No job will read the spec: its secrets go now.
            await asyncio.to_thread(shutil.rmtree, files.folder, True)
            raise
        # A restart finds the job by this even once the controller has forgotten it (until
        # then squeue names it too, so a failed write loses nothing yet).
        try:
            await asyncio.to_thread(files.write_job, JobRecord(self._comment, job_id))
        except OSError as exc:
            log.warning("slurm_job_record_failed", sandbox_id=spec.sandbox_id, error=exc.strerror)
        return Handle(spec.sandbox_id, job_id)

    def _prepare(self, spec: LaunchSpec, files: RunnerFiles) -> None:
        # A launch that died before its job was recorded leaves its folder: start afresh.
        shutil.rmtree(files.folder, ignore_errors=True)
        self._jobs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The specs hold secrets: only this user may look (a folder made by an older
        # version, or by hand, may be wider).
        self._jobs_dir.chmod(0o700)
        files.folder.mkdir(mode=0o700)
        # Recorded before the spec: a restart then finds the folder, and removes the secrets
        # of a job that was never submitted.
        files.write_job(JobRecord(self._comment))
        files.write_spec(spec, self._options)
        command = shlex.join([*self._slurm.runner, str(files.folder)])
        (files.folder / "job.sh").write_text(f"#!/bin/sh\nexec {command}\n")

    async def admit(self, request: SandboxRequest) -> None:
        """Asks Slurm (sbatch --test-only) whether it would ever run the sandbox: a request
        no node or partition can hold is the caller's to change, refused now, not a job
        that fails later."""
        options = self._resource_options(
            request.cpus, request.memory_bytes, request.gpu_count, request.time_limit_s
        )
        try:
            await commands.test_submission(options)
        except commands.Refused as refused:
            raise FailedPreconditionError(
                f"Slurm cannot run this sandbox as asked ({request.cpus:g} CPUs, "
                f"{request.memory_bytes} bytes of memory, {request.gpu_count} GPUs, "
                f"{request.time_limit_s:g}s): {refused}",
                reason="SLURM_REFUSED",
                metadata={"slurm_reason": str(refused)},
            ) from refused
        except BackendError as exc:
            raise UnavailableError(
                f"the Slurm controller did not answer: {exc}", reason="SLURM_UNAVAILABLE"
            ) from exc

    def _resource_options(
        self, cpus: float, memory_bytes: int, gpu_count: int, time_limit_s: float
    ) -> list[str]:
        limit_s = time_limit_s + self._stop_grace_s + TIME_LIMIT_MARGIN_S
        options = [
            f"--cpus-per-task={max(1, math.ceil(cpus))}",
            f"--mem={math.ceil((memory_bytes + RUNNER_MEMORY_BYTES) / MIB)}M",
            f"--time={math.ceil(limit_s / 60)}",
        ]
        if gpu_count:
            options.append(f"--gres=gpu:{gpu_count}")
        if self._slurm.partition:
            options.append(f"--partition={self._slurm.partition}")
        return [*options, *self._slurm.sbatch_args]

    def _sbatch_options(self, spec: LaunchSpec, files: RunnerFiles) -> list[str]:
        options = [
            f"--job-name={JOB_PREFIX}{spec.sandbox_id}",
            f"--comment={self._comment}",
            f"--output={files.folder / 'slurm.out'}",
            f"--chdir={files.folder}",
            "--export=" + ",".join(name for name in EXPORTED if name in os.environ),
            # The runner deletes the spec as it reads it: a job requeued after a node failure
            # could never start the agent again, and would only hide the loss.
            "--no-requeue",
        ]
        resources = self._resource_options(
            spec.cpus, spec.memory_bytes, spec.gpu_count, spec.time_limit_s
        )
        return [*options, *resources]

    async def started(self, handle: Handle) -> Handle:
        files = self._files(handle.sandbox_id)
        while True:
            found = await _read(files.read_started)
            if found is not None:
                return Handle(
                    handle.sandbox_id,
                    handle.ref,
                    found.image_digest,
                    gpus=found.gpus,
                    placement=f"Slurm job {handle.ref} on {found.placement}",
                    started_at=found.at,
                )
            await self._raise_if_ended(handle, files)
            await asyncio.sleep(self._slurm.poll_interval_s)

    async def _raise_if_ended(self, handle: Handle, files: RunnerFiles) -> None:
        """A BackendError when the job ended before the runner said it started, or without
        the runner's exit record, or when Slurm will never start it."""
        _raise_runner_error(await _read(files.read_exit))
        job = await self._job(handle.ref)
        if job is not None and job.never_starts:
            raise BackendError(
                f"Slurm will never start job {handle.ref} as submitted ({job.reason}): no node "
                "of its partition can hold the sandbox's CPUs, memory, GPUs or time limit",
            )
        if job is not None and not job.ended:
            return
        await self._lost_unless_recorded(
            handle,
            job,
            files,
            "before its node runner started the agent",
            also=lambda: files.read_started() is not None,
        )

    async def _lost_unless_recorded(
        self,
        handle: Handle,
        job: commands.QueuedJob | None,
        files: RunnerFiles,
        what: str,
        also: Callable[[], bool] = lambda: False,
    ) -> None:
        """For a job that ended: LOST (a BackendError) unless the runner's exit record, or
        `also`, shows up within the filesystem's lag."""
        give_up = asyncio.get_running_loop().time() + self._slurm.fs_lag_s
        while True:
            if await _read(lambda: files.read_exit() is not None or also()):
                return
            if asyncio.get_running_loop().time() >= give_up:
                break
            await asyncio.sleep(self._slurm.poll_interval_s)
        state = job.state if job else "gone from the queue"
        raise BackendError(
            f"Slurm job {handle.ref} ended ({state}) {what}: lost with its node, or killed",
            reason="LOST",
        )

    # Watching

    async def output(self, handle: Handle, since: float = 0.0) -> AsyncIterator[OutputLine]:
        files = self._files(handle.sandbox_id)
        while not await asyncio.to_thread(files.output.exists):
            if await _read(files.read_exit) is not None:
                return
            await asyncio.sleep(self._slurm.poll_interval_s)
        # The runner writes all output before its exit record: once that is there, one more
        # pass to the end reads everything.
        last_pass = False
        with await _read(files.open_output) as source:
            while True:
                lines, at_end = await asyncio.to_thread(_whole_lines, source)
                for raw in lines:
                    try:
                        yield parse_output_line(raw)
                    except (ValueError, KeyError) as exc:
                        raise BackendError(f"the node runner's output is malformed: {exc}") from exc
                if not at_end:
                    continue
                if last_pass:
                    return
                last_pass = await _read(files.read_exit) is not None
                if not last_pass:
                    await asyncio.sleep(min(0.25, self._slurm.poll_interval_s))

    async def wait(self, handle: Handle) -> ExitInfo:
        files = self._files(handle.sandbox_id)
        while True:
            ended = await _read(files.read_exit)
            if ended is not None:
                _raise_runner_error(ended)
                if ended.stopped_by_scheduler and not await asyncio.to_thread(files.stop.exists):
                    # Not the service's stop: the agent did not end on its own, nor by a
                    # limit of the service's, so its exit code says nothing of the agent.
                    raise BackendError(
                        f"Slurm stopped job {handle.ref} (its time limit, a cancel or a "
                        "preemption); the agent was stopped with it",
                        reason="LOST",
                    )
                return ExitInfo(ended.exit_code, ended.oom_killed)
            job = await self._job(handle.ref)
            if job is None or job.ended:
                await self._lost_unless_recorded(
                    handle, job, files, "without its node runner's exit record"
                )
                continue
            await asyncio.sleep(self._slurm.poll_interval_s)

    async def _job(self, job_id: str, *, fresh: bool = False) -> commands.QueuedJob | None:
        """The job as squeue knows it (`fresh`: now, else at most a poll interval ago), or
        UNKNOWN while squeue fails: a controller that is restarting or failing over must not
        end the sandboxes its nodes still run (the runner's exit record, not squeue, says
        how the agent ended)."""
        try:
            return await (commands.job(job_id) if fresh else self._board.job(job_id))
        except BackendError as exc:
            log.warning("slurm_squeue_failed", job_id=job_id, error=str(exc))
            return UNKNOWN

    async def usage(self, handle: Handle) -> Usage:
        sample = await _read(self._files(handle.sandbox_id).read_sample)
        if sample is None:
            return Usage()
        return Usage(sample.cpu_seconds, sample.peak_memory_bytes)

    async def writable_layer_bytes(self, handle: Handle) -> int | None:
        sample = await _read(self._files(handle.sandbox_id).read_sample)
        return sample.writable_layer_bytes if sample else None

    # Ending

    async def stop(self, handle: Handle, grace_s: float) -> None:
        """The runner stops the agent (SIGTERM, SIGKILL after grace_s); a runner that does
        not finish in time has its job killed. A queued job is just cancelled."""
        files = self._files(handle.sandbox_id)
        # First, whatever the job's state: a runner starting now stops on it too, and a
        # stop with it is the service's, not Slurm's own. The runner looks for it itself,
        # so the stop needs no controller; the signal only makes it prompt.
        try:
            await asyncio.to_thread(files.write, files.stop, {"grace_s": grace_s})
        except OSError as exc:  # the signal, then the cancel, still stop it
            log.warning("slurm_stop_file_failed", sandbox_id=handle.sandbox_id, error=exc.strerror)
        job = await self._job(handle.ref, fresh=True)
        if job is None or job.ended:
            return
        if job.state == "PENDING":
            await commands.cancel(handle.ref)
            return
        try:
            await commands.cancel(handle.ref, signal="TERM", batch_only=True)
        except BackendError as exc:
            log.warning("slurm_signal_failed", sandbox_id=handle.sandbox_id, error=str(exc))
        give_up = asyncio.get_running_loop().time() + grace_s + STOP_MARGIN_S
        while asyncio.get_running_loop().time() < give_up:
            if await _read(files.read_exit) is not None:
                return
            await asyncio.sleep(min(0.25, self._slurm.poll_interval_s))
        await commands.cancel(handle.ref)

    async def remove(self, handle: Handle) -> None:
        # The folder first: a job that outlives a failed cancel then finds no spec, and
        # cannot start the agent of a sandbox that has ended.
        await asyncio.to_thread(shutil.rmtree, self._files(handle.sandbox_id).folder, True)
        job = await commands.job(handle.ref)
        if job is not None and not job.ended:
            await commands.cancel(handle.ref)

    async def node_egress(self, handle: Handle) -> EgressSums | None:
        files = self._files(handle.sandbox_id)
        raw = await _read(lambda: files.read(files.egress))
        try:
            return None if raw is None else EgressSums.from_json(raw)
        except ValueError as exc:
            raise BackendError(f"the node runner's egress log is malformed: {exc}") from exc

    async def list_owned(self, instance_labels: dict[str, str]) -> list[tuple[Handle, bool]]:
        """This instance's jobs, by their comment (the instance is in the backend's settings,
        the same node and instance id the labels name), and by the job folders it recorded:
        the controller forgets a job MinJobAge (300 s by default) after it ended."""
        owned: dict[str, tuple[Handle, bool]] = {}
        for job in await commands.jobs_named(JOB_PREFIX):
            sandbox_id = job.name.removeprefix(JOB_PREFIX)
            # Never a path: the name is read back from the controller.
            if job.comment == self._comment and _SANDBOX_ID.fullmatch(sandbox_id):
                owned[sandbox_id] = (Handle(sandbox_id, job.job_id), not job.ended)
        for sandbox_id, job_id in await asyncio.to_thread(self._recorded_jobs):
            if sandbox_id in owned:
                continue
            if job_id:
                owned[sandbox_id] = (Handle(sandbox_id, job_id), False)
            else:
                # A submission a crash cut short: no job will read its spec's secrets.
                await asyncio.to_thread(shutil.rmtree, self._files(sandbox_id).folder, True)
        return list(owned.values())

    def _recorded_jobs(self) -> list[tuple[str, str]]:
        """(sandbox id, job id) of each job folder this instance recorded."""
        try:
            names = os.listdir(self._jobs_dir)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if not _SANDBOX_ID.fullmatch(name):
                continue
            try:
                record = self._files(name).read_job()
            except (OSError, ValueError, TypeError):  # not a folder of ours
                continue
            if record is not None and record.comment == self._comment:
                found.append((name, record.job_id))
        return found


def _whole_lines(source: BinaryIO, most: int = 1000) -> tuple[list[bytes], bool]:
    """Up to `most` whole lines, and whether the end was reached: the file's, or a line still
    being written, which is left to read again."""
    lines: list[bytes] = []
    while len(lines) < most:
        raw = source.readline(MAX_LINE_BYTES + 1)
        if not raw.endswith(b"\n"):
            if len(raw) > MAX_LINE_BYTES:  # the runner never writes one: not its output
                raise BackendError(
                    f"the node runner's output has a line over {MAX_LINE_BYTES} bytes"
                )
            source.seek(-len(raw), os.SEEK_CUR)
            return lines, True
        lines.append(raw)
    return lines, False


def _build(settings: SandboxSettings) -> SlurmBackend:
    return SlurmBackend(settings, SlurmSettings.from_env())


PROVIDER = BackendProvider(SlurmBackend.name, CAPABILITIES, _build)
