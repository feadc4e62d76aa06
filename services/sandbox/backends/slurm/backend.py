"""The Slurm backend: each sandbox is a Slurm job that runs the node runner
(services.sandbox.node.runner), which starts the agent with the chosen node's Docker engine.

Slurm places the job, allocates its GPUs (--gres=gpu:N), enforces its time limit (as a
backstop to the service's own) and queues it while the cluster is full; the sandbox stays
PENDING until the runner reports the agent running. The service and the runner share the
job's RunnerFiles folder, and the sandbox's folders, on a filesystem every node mounts at
the same path, as Slurm clusters' home and scratch filesystems are (docs/deploy.md).

Jobs are named `mleb-<sandbox id>` and carry `mleb:<node>/<instance>` as their comment, so
reconcile finds exactly this service instance's jobs in squeue.
"""

from __future__ import annotations

import asyncio
import math
import os
import shlex
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.common.errors import invalid_field
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
from services.sandbox.config import SandboxSettings
from services.sandbox.node.egress_proxy import EgressSums
from services.sandbox.node.runner_files import (
    MAX_LINE_BYTES,
    RunnerFiles,
    RunnerOptions,
    parse_output_line,
)

JOB_PREFIX = "mleb-"
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

    @classmethod
    def from_env(cls) -> SlurmSettings:
        raw_poll = _env("POLL_INTERVAL_S", "1.0")
        try:
            poll = float(raw_poll)
        except ValueError as exc:
            raise invalid_field(
                "MLEB_SLURM_POLL_INTERVAL_S", f"not a number: {raw_poll!r}"
            ) from exc
        runner = tuple(shlex.split(_env("RUNNER"))) or cls.runner
        return cls(
            partition=_env("PARTITION"),
            sbatch_args=tuple(shlex.split(_env("SBATCH_ARGS"))),
            runner=runner,
            gpu_device_dir=_env("GPU_DEVICE_DIR"),
            poll_interval_s=poll,
            grader_addr=_env("GRADER_ADDR", os.environ.get("MLEB_GRADER_ADDR", "")),
            client_tls_ca=_env("TLS_CA", os.environ.get("MLEB_TLS_CA", "")),
        )


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
        self._comment = f"mleb:{settings.node}/{settings.instance_id}"

    def _files(self, sandbox_id: str) -> RunnerFiles:
        return RunnerFiles(self._jobs_dir / sandbox_id)

    # Launch

    async def launch(self, spec: LaunchSpec) -> Handle:
        files = self._files(spec.sandbox_id)
        # A launch that died before its job was recorded leaves its folder: start afresh.
        shutil.rmtree(files.folder, ignore_errors=True)
        self._jobs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        files.folder.mkdir(mode=0o700)
        files.write_spec(spec, self._options)
        script = files.folder / "job.sh"
        command = shlex.join([*self._slurm.runner, str(files.folder)])
        script.write_text(f"#!/bin/sh\nexec {command}\n")
        try:
            job_id = await commands.submit(str(script), self._sbatch_options(spec, files))
        except BackendError:
            # No job will read the spec: its secrets go now.
            shutil.rmtree(files.folder, ignore_errors=True)
            raise
        return Handle(spec.sandbox_id, job_id)

    def _sbatch_options(self, spec: LaunchSpec, files: RunnerFiles) -> list[str]:
        limit_s = spec.time_limit_s + spec.stop_grace_s + TIME_LIMIT_MARGIN_S
        options = [
            f"--job-name={JOB_PREFIX}{spec.sandbox_id}",
            f"--comment={self._comment}",
            f"--cpus-per-task={max(1, math.ceil(spec.cpus))}",
            f"--mem={math.ceil((spec.memory_bytes + RUNNER_MEMORY_BYTES) / MIB)}M",
            f"--time={math.ceil(limit_s / 60)}",
            f"--output={files.folder / 'slurm.out'}",
            f"--chdir={files.folder}",
            "--export=" + ",".join(name for name in EXPORTED if name in os.environ),
        ]
        if spec.gpu_count:
            options.append(f"--gres=gpu:{spec.gpu_count}")
        if self._slurm.partition:
            options.append(f"--partition={self._slurm.partition}")
        return [*options, *self._slurm.sbatch_args]

    async def started(self, handle: Handle) -> Handle:
        files = self._files(handle.sandbox_id)
        while True:
            found = files.read_started()
            if found is not None:
                return Handle(
                    handle.sandbox_id,
                    handle.ref,
                    found.image_digest,
                    gpus=found.gpus,
                    placement=f"Slurm job {handle.ref} on {found.placement}",
                )
            await self._raise_if_ended(handle, files)
            await asyncio.sleep(self._slurm.poll_interval_s)

    async def _raise_if_ended(self, handle: Handle, files: RunnerFiles) -> None:
        """A BackendError when the job ended before the runner said it started, or without
        the runner's exit record."""
        ended = files.read_exit()
        if ended is not None and ended.error:
            raise BackendError(ended.error, reason=ended.reason or "ENGINE_ERROR")
        job = await commands.job(handle.ref)
        if job is not None and not job.ended:
            return
        # The shared filesystem may show the runner's last write a moment late.
        await asyncio.sleep(self._slurm.poll_interval_s)
        if files.read_exit() is None and files.read_started() is None:
            state = job.state if job else "gone from the queue"
            raise BackendError(
                f"Slurm job {handle.ref} ended ({state}) before its node runner started the "
                "agent: lost with its node, or killed",
                reason="LOST",
            )

    # Watching

    async def output(self, handle: Handle, since: float = 0.0) -> AsyncIterator[OutputLine]:
        files = self._files(handle.sandbox_id)
        while not files.output.exists():
            if files.read_exit() is not None:
                return
            await asyncio.sleep(self._slurm.poll_interval_s)
        # The runner writes all output before its exit record: once that is there, one more
        # pass to the end reads everything.
        last_pass = False
        with open(files.output, "rb") as source:
            while True:
                raw = source.readline(MAX_LINE_BYTES + 1)
                if raw.endswith(b"\n"):
                    try:
                        yield parse_output_line(raw)
                    except (ValueError, KeyError) as exc:
                        raise BackendError(f"the node runner's output is malformed: {exc}") from exc
                    continue
                if last_pass:
                    return
                source.seek(-len(raw), os.SEEK_CUR)  # a line still being written: again later
                last_pass = files.read_exit() is not None
                if not last_pass:
                    await asyncio.sleep(min(0.25, self._slurm.poll_interval_s))

    async def wait(self, handle: Handle) -> ExitInfo:
        files = self._files(handle.sandbox_id)
        while True:
            ended = files.read_exit()
            if ended is not None:
                if ended.error:
                    raise BackendError(ended.error, reason=ended.reason or "ENGINE_ERROR")
                return ExitInfo(ended.exit_code, ended.oom_killed)
            job = await commands.job(handle.ref)
            if job is None or job.ended:
                await asyncio.sleep(self._slurm.poll_interval_s)
                if files.read_exit() is None:
                    state = job.state if job else "gone from the queue"
                    raise BackendError(
                        f"Slurm job {handle.ref} ended ({state}) without its node runner's "
                        "exit record: lost with its node, or killed",
                        reason="LOST",
                    )
                continue
            await asyncio.sleep(self._slurm.poll_interval_s)

    async def usage(self, handle: Handle) -> Usage:
        sample = self._files(handle.sandbox_id).read_sample()
        if sample is None:
            return Usage()
        return Usage(sample.cpu_seconds, sample.peak_memory_bytes)

    async def writable_layer_bytes(self, handle: Handle) -> int | None:
        sample = self._files(handle.sandbox_id).read_sample()
        return sample.writable_layer_bytes if sample else 0

    # Ending

    async def stop(self, handle: Handle, grace_s: float) -> None:
        """The runner stops the agent (SIGTERM, SIGKILL after grace_s); a runner that does
        not finish in time has its job killed. A queued job is just cancelled."""
        files = self._files(handle.sandbox_id)
        job = await commands.job(handle.ref)
        if job is None or job.ended:
            return
        if job.state == "PENDING":
            await commands.cancel(handle.ref)
            return
        files.write(files.stop, {"grace_s": grace_s})
        await commands.cancel(handle.ref, signal="TERM", batch_only=True)
        give_up = asyncio.get_running_loop().time() + grace_s + STOP_MARGIN_S
        while files.read_exit() is None and asyncio.get_running_loop().time() < give_up:
            await asyncio.sleep(min(0.25, self._slurm.poll_interval_s))
        if files.read_exit() is None:
            await commands.cancel(handle.ref)

    async def remove(self, handle: Handle) -> None:
        job = await commands.job(handle.ref) if handle.ref else None
        if job is not None and not job.ended:
            await commands.cancel(handle.ref)
        shutil.rmtree(self._files(handle.sandbox_id).folder, ignore_errors=True)

    async def node_egress(self, handle: Handle) -> EgressSums | None:
        files = self._files(handle.sandbox_id)
        raw = files.read(files.egress)
        return None if raw is None else EgressSums.from_json(raw)

    async def list_owned(self, instance_labels: dict[str, str]) -> list[tuple[Handle, bool]]:
        """This instance's jobs, by their comment (the instance is in the backend's settings,
        the same node and instance id the labels name)."""
        return [
            (Handle(job.name.removeprefix(JOB_PREFIX), job.job_id), not job.ended)
            for job in await commands.jobs_named(JOB_PREFIX)
            if job.comment == self._comment
        ]


def _build(settings: SandboxSettings) -> SlurmBackend:
    return SlurmBackend(settings, SlurmSettings.from_env())


PROVIDER = BackendProvider(SlurmBackend.name, CAPABILITIES, _build)
