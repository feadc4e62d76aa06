"""The node runner: runs one sandbox's agent on the node a cluster scheduler chose.

A scheduler-placed backend (Slurm's job script) starts it as
`python -m services.sandbox.node.runner FOLDER`, FOLDER being the sandbox's RunnerFiles on
a filesystem the service shares. It starts the agent and its network sidecar with the node's
Docker engine, exactly as the Docker backend does on the service's own node, with the GPUs
the scheduler allocated, and serves the agent's validation, grader and proxy endpoints on
the node (runner_endpoints). It reports the start, the output, usage samples, the egress log
and the exit back through FOLDER, and removes the containers before the job ends. SIGTERM
stops the agent (SIGTERM, then SIGKILL after the grace period in stop.json), as a
scheduler's cancel or time limit does.

Another container engine (apptainer, enroot) would slot in here as another backend for the
same steps; the service's side would not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import structlog

from services.common.errors import MlebError
from services.sandbox.backends.base import BackendError, Handle, LaunchSpec
from services.sandbox.backends.docker.backend import DockerBackend
from services.sandbox.node.runner_endpoints import NodeEndpoints
from services.sandbox.node.runner_files import (
    Ended,
    RunnerFiles,
    RunnerOptions,
    Sample,
    Started,
    bounded_output_line,
    output_line,
)

log = structlog.get_logger("mleb.node_runner")

# After the agent exits, how long its remaining output may take to arrive.
OUTPUT_DRAIN_S = 30.0
# How often the runner looks for the service's stop.json: a stop needs no working controller.
STOP_POLL_S = 1.0
SLURM_JOB_LABEL = "mleb.slurm_job"


class AllocationError(Exception):
    """The scheduler's allocation does not match what the sandbox asked for."""


def allocated_gpus(env: Mapping[str, str], wanted: int) -> list[int]:
    """The GPU indices the scheduler gave this job, checked against the sandbox's gpu_count.
    Inside a Slurm job only SLURM_JOB_GPUS counts: its CUDA_VISIBLE_DEVICES may be renumbered
    from 0 (ConstrainDevices), and the engine, outside the job's cgroup, would take 0 for
    /dev/nvidia0, perhaps another job's GPU. Elsewhere, CUDA_VISIBLE_DEVICES. A sandbox
    without GPUs gets none, whatever the node's environment says (Slurm may set
    CUDA_VISIBLE_DEVICES to NoDevFiles for a job without GPUs)."""
    if not wanted:
        return []
    source = "SLURM_JOB_GPUS" if "SLURM_JOB_ID" in env else "CUDA_VISIBLE_DEVICES"
    raw = env.get(source, "")
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not all(re.fullmatch("[0-9]{1,4}", item) for item in items):
        raise AllocationError(f"the scheduler's GPU list is not a list of indices: {raw!r}")
    indices = [int(item) for item in items]
    if len(set(indices)) != wanted:
        raise AllocationError(f"the job holds {len(set(indices))} GPUs; the sandbox asked {wanted}")
    return sorted(set(indices))


def with_gpus(
    spec: LaunchSpec, indices: list[int], options: RunnerOptions, nvml: Any = None
) -> LaunchSpec:
    """The spec with the allocated GPUs: by UUID for the NVIDIA runtime, or as device files
    where the node's GPUs are only those (options.gpu_device_dir).

    Slurm's GPU index i is the i-th device of the node's gres.conf, /dev/nvidia<i> where it
    lists them all in order (or AutoDetect=nvml does): the device with minor number i. That
    is not always NVML's index i (NVML orders by PCI bus), so UUIDs are found by minor
    number: another index would hand the agent a GPU another job holds."""
    if not indices:
        return spec
    visible = ",".join(str(i) for i in range(len(indices)))
    if options.gpu_device_dir:
        devices = [str(Path(options.gpu_device_dir) / f"nvidia{i}") for i in indices]
        env = {**spec.env, "CUDA_VISIBLE_DEVICES": visible}
        return dataclasses.replace(spec, gpu_devices=devices, env=env)
    nvml = nvml or importlib.import_module("pynvml")  # only where real GPUs are
    nvml.nvmlInit()
    try:
        by_minor = {}
        for n in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(n)
            by_minor[nvml.nvmlDeviceGetMinorNumber(handle)] = str(nvml.nvmlDeviceGetUUID(handle))
    finally:
        nvml.nvmlShutdown()
    missing = [i for i in indices if i not in by_minor]
    if missing:
        raise AllocationError(f"no GPU of this node is /dev/nvidia{missing[0]}")
    return dataclasses.replace(spec, gpu_uuids=[by_minor[i] for i in indices])


def _why(exc: Exception) -> str:
    """An error as the sandbox's record may show it: never a path on the node."""
    if isinstance(exc, MlebError):
        return exc.message
    if isinstance(exc, AllocationError):  # ours, and says what Slurm gave
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def gpu_names(spec: LaunchSpec, indices: list[int]) -> tuple[str, ...]:
    """How the sandbox's record names its GPUs: UUIDs where NVML gave them, else the node's
    device names."""
    if spec.gpu_uuids:
        return tuple(spec.gpu_uuids)
    return tuple(f"{socket.gethostname()}:nvidia{i}" for i in indices)


class Runner:
    def __init__(self, files: RunnerFiles, backend: DockerBackend) -> None:
        self._files = files
        self._backend = backend
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, spec: LaunchSpec, options: RunnerOptions, env: Mapping[str, str]) -> None:
        """Runs the agent to its end; the exit record is written last of all, once the
        containers are gone and the egress log is written."""
        self._files.write_exit(await self._run(spec, options, env))

    async def _run(self, spec: LaunchSpec, options: RunnerOptions, env: Mapping[str, str]) -> Ended:
        try:
            indices = allocated_gpus(env, spec.gpu_count)
            spec = with_gpus(spec, indices, options)
        except (AllocationError, ImportError, OSError) as exc:
            return Ended(error=_why(exc), reason="GPU_UNAVAILABLE")
        except Exception as exc:  # NVML's errors
            return Ended(error=f"NVML: {exc}", reason="GPU_UNAVAILABLE")
        if env.get("SLURM_JOB_ID"):
            # What the node epilog (deploy/slurm/epilog.sh) removes should this runner die.
            job = f"{env.get('SLURM_CLUSTER_NAME', '')}:{env['SLURM_JOB_ID']}"
            spec = dataclasses.replace(spec, labels={**spec.labels, SLURM_JOB_LABEL: job})
        endpoints = NodeEndpoints(self._files, options)
        try:
            try:
                spec = await endpoints.open(spec)
            except (MlebError, OSError) as exc:
                return Ended(error=f"the sandbox's endpoints could not be opened: {_why(exc)}")
            try:
                handle = await self._backend.launch(spec)
            except BackendError as exc:
                await self._remove(Handle(spec.sandbox_id, ""))
                return Ended(error=str(exc), reason=exc.reason)
            except Exception as exc:
                # Still an exit record (the service would call it a lost node), never a path.
                log.exception("node_runner_launch_failed", sandbox_id=spec.sandbox_id)
                await self._remove(Handle(spec.sandbox_id, ""))
                return Ended(
                    error=f"the node runner could not start the agent: {_why(exc)}",
                    reason="RUNTIME_ERROR",
                )
            try:
                gpus = gpu_names(spec, indices)
                return await self._supervise(spec, options, handle, gpus, endpoints)
            finally:
                await self._remove(handle)
        finally:
            await endpoints.close()

    async def _supervise(
        self,
        spec: LaunchSpec,
        options: RunnerOptions,
        handle: Handle,
        gpus: tuple[str, ...],
        endpoints: NodeEndpoints,
    ) -> Ended:
        self._files.write_started(
            Started(handle.ref, handle.image_digest, socket.gethostname(), gpus, time.time())
        )
        pump = asyncio.create_task(self._pump(handle, options.max_output_bytes))
        sampler = asyncio.create_task(self._sample(handle, options.sample_interval_s, endpoints))
        waiter = asyncio.create_task(self._backend.wait(handle))
        stopper = asyncio.create_task(self._until_stopped())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            by_scheduler = False
            if not waiter.done():
                grace = self._files.stop_grace()
                # No stop.json: Slurm's own signal (its time limit, a cancel, a preemption).
                by_scheduler = grace is None
                await self._backend.stop(handle, spec.stop_grace_s if grace is None else grace)
            try:
                exit_info = await waiter
            except BackendError as exc:
                return Ended(error=str(exc), reason=exc.reason)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pump, OUTPUT_DRAIN_S)
            with contextlib.suppress(BackendError):
                await self._take_sample(handle)
            return Ended(
                exit_info.exit_code, exit_info.oom_killed, stopped_by_scheduler=by_scheduler
            )
        finally:
            for task in (pump, sampler, waiter, stopper):
                task.cancel()

    async def _until_stopped(self) -> None:
        """A signal, or the service's stop.json, which it writes before it signals: the
        controller that would deliver the signal may be away."""
        while not self._stop.is_set():
            with contextlib.suppress(ValueError):  # half there: looked at again
                if self._files.stop_grace() is not None:
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), STOP_POLL_S)

    async def _pump(self, handle: Handle, max_bytes: int) -> None:
        """The agent's output, appended line by line; past max_bytes, one notice, then only
        the engine's own bounded log keeps it."""
        written = 0
        with open(self._files.output, "ab") as out:
            async for line in self._backend.output(handle):
                record = bounded_output_line(line)
                if written + len(record) > max_bytes:
                    notice = dataclasses.replace(
                        line, text=f"[node runner: output past {max_bytes} bytes not kept]"
                    )
                    out.write(output_line(notice))
                    return
                out.write(record)
                # Whole records only, each as soon as it is there (a raw write may be short).
                out.flush()
                written += len(record)

    async def _take_sample(self, handle: Handle) -> None:
        usage = await self._backend.usage(handle)
        layer = await self._backend.writable_layer_bytes(handle)
        self._files.write_sample(Sample(usage.cpu_seconds, usage.peak_memory_bytes, layer))

    async def _sample(self, handle: Handle, interval_s: float, endpoints: NodeEndpoints) -> None:
        while True:
            with contextlib.suppress(BackendError, OSError):  # a sample may be missed
                await self._take_sample(handle)
            await endpoints.flush_egress()
            await asyncio.sleep(interval_s)

    async def _remove(self, handle: Handle) -> None:
        """Nothing of the sandbox may outlive the job: the scheduler counts it as free."""
        try:
            await self._backend.remove(handle)
        except BackendError:
            log.exception("node_runner_remove_failed", sandbox_id=handle.sandbox_id)


async def run_folder(folder: Path) -> None:
    files = RunnerFiles(folder)
    try:
        spec, options = files.take_spec()
        extra = {"sidecar_image": options.sidecar_image} if options.sidecar_image else {}
        runner = Runner(files, DockerBackend(docker.from_env(), **extra))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runner.request_stop)
        await runner.run(spec, options, os.environ)
    except Exception as exc:
        # Whatever went wrong (no engine on this node, a damaged spec), the service hears
        # why from an exit record, rather than calling the node lost; never with a path.
        log.exception("node_runner_failed")
        if files.read_exit_quietly() is None:
            files.write_exit(
                Ended(error=f"the node runner failed: {_why(exc)}", reason="RUNTIME_ERROR")
            )
        raise


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m services.sandbox.node.runner FOLDER", file=sys.stderr)
        return 2
    asyncio.run(run_folder(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
