"""The Docker backend: each sandbox is an agent container plus a network sidecar.

The sidecar owns the sandbox's network namespace. It has no route out (network none, only
loopback) and forwards 127.0.0.1:5000 / :50052 / :3128 to the host's Unix sockets in the
sandbox's sockets directory (see services.sandbox.endpoints). The agent joins that namespace,
so MLE-bench's `localhost:5000` works and nothing else is reachable. Internet mode gives the
sidecar a bridge network instead, so the same ports work and the internet is reachable too.

The docker SDK blocks, so every engine call runs in a thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import shutil
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import docker
import docker.errors
import docker.types
import structlog
from docker.models.containers import Container

from services.sandbox import sidecar_forwarder
from services.sandbox.backends.base import (
    AGENT_DIR,
    CODE_DIR,
    DATA_DIR,
    EGRESS_PROXY_PORT,
    GRPC_GRADER_PORT,
    HTTP_VALIDATE_PORT,
    INSTRUCTIONS_FILE,
    LOGS_DIR,
    SUBMISSION_DIR,
    VALIDATE_SCRIPT,
    BackendError,
    ExitInfo,
    Handle,
    LaunchSpec,
    NetworkMode,
    OutputLine,
    OutputStream,
    Usage,
)

log = structlog.get_logger("mleb.sandbox.docker")

SANDBOX_LABEL = "mleb.sandbox.id"
ROLE_LABEL = "mleb.role"
DEFAULT_SIDECAR_IMAGE = "mleb-sidecar"
# For images whose own user is root or unset: agents never run as root.
DEFAULT_AGENT_USER = "1000:1000"
MLEBENCH_USER = "nonroot"

_SOCKETS_IN_SIDECAR = "/run/mleb"
_FORWARDER_NAME = "sidecar_forwarder.py"
_FORWARDER_IN_SIDECAR = f"{_SOCKETS_IN_SIDECAR}/{_FORWARDER_NAME}"
_SIDECAR_READY_TIMEOUT_S = 15.0
# Lines the log reader may hold for a slow consumer before it stops reading from the engine.
_OUTPUT_BUFFER_LINES = 4096

# MLE-bench's environment entrypoint makes /home writable for nonroot at start; compat mode
# does the same for the image's own /home (not our mounts), then drops to nonroot for good.
# With no-new-privileges, nothing run later can regain the capabilities kept for this step.
_COMPAT_PRELUDE = (
    "find /home -xdev -exec chmod a+rw {} + 2>/dev/null; "
    f"exec setpriv --reuid={MLEBENCH_USER} --regid={MLEBENCH_USER} --init-groups "
    f'--inh-caps=-all bash {AGENT_DIR}/start.sh "$@"'
)
_COMPAT_CAPS = ["FOWNER", "SETUID", "SETGID"]

T = TypeVar("T")


def _sidecar_name(sandbox_id: str) -> str:
    return f"mleb-{sandbox_id}-sidecar"


def _agent_name(sandbox_id: str) -> str:
    return f"mleb-{sandbox_id}"


@functools.lru_cache(maxsize=64)
def _whole_seconds(whole: str) -> float:
    return datetime.fromisoformat(whole + "+00:00").timestamp()


def parse_engine_time(stamp: str) -> float:
    """RFC 3339 with nanoseconds, as docker prints it, to unix seconds."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return _whole_seconds(whole) + (float("0." + fraction) if fraction else 0.0)


def _is_root(user: str) -> bool:
    name = user.split(":", 1)[0]
    return name in {"", "root", "0"}


def _start_failure(exc: docker.errors.APIError) -> BackendError:
    text = str(exc)
    if "nvidia" in text or "device driver" in text or "gpu" in text.lower():
        return BackendError(f"GPU runtime unavailable: {exc.explanation}", reason="GPU_UNAVAILABLE")
    if "OCI runtime" in text or "runc" in text:
        return BackendError(f"container runtime failed: {exc.explanation}", reason="RUNTIME_ERROR")
    return BackendError(f"engine error: {exc.explanation}")


def _close_all(responses: list[Any]) -> None:
    for response in responses:
        with contextlib.suppress(Exception):
            response.close()


class DockerBackend:
    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        sidecar_image: str = DEFAULT_SIDECAR_IMAGE,
    ) -> None:
        self._client = client or docker.from_env()
        self._sidecar_image = sidecar_image
        # Engine calls get their own threads, never the loop's default executor: waiting on a
        # container holds a thread for the agent's whole life, so waits get one each
        # (created lazily), and short calls a bounded pool that waits can never starve.
        self._calls = ThreadPoolExecutor(16, thread_name_prefix="docker-call")
        self._waits = ThreadPoolExecutor(4096, thread_name_prefix="docker-wait")

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A short engine call; any engine error is an infrastructure failure."""
        try:
            return await self._run(self._calls, fn, *args, **kwargs)
        except docker.errors.DockerException as exc:
            raise BackendError(f"engine error: {exc}") from exc

    async def _run(
        self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))

    # Launch

    async def launch(self, spec: LaunchSpec) -> Handle:
        return await self._call(self._launch, spec)

    async def create(self, spec: LaunchSpec) -> Handle:
        """Starts the sidecar and creates the agent without starting it (for inspection)."""
        handle, _ = await self._call(self._create, spec)
        return handle

    def _launch(self, spec: LaunchSpec) -> Handle:
        handle, agent = self._create(spec)
        try:
            agent.start()
        except docker.errors.APIError as exc:
            self._remove_all(spec.sandbox_id, agent.id)
            raise _start_failure(exc) from exc
        except BaseException:
            self._remove_all(spec.sandbox_id, agent.id)
            raise
        return handle

    def _create(self, spec: LaunchSpec) -> tuple[Handle, Container]:
        image = self._image(spec.image)
        self._image(self._sidecar_image)
        for folder in (spec.layout.submission_dir, spec.layout.logs_dir, spec.layout.code_dir):
            # The agent's uid is the image's business; the folders are this sandbox's only.
            folder.chmod(0o777)
        try:
            sidecar = self._start_sidecar(spec)
            agent = self._client.containers.create(**self._agent_config(spec, image, sidecar))
        except BaseException:
            self._remove_all(spec.sandbox_id)
            raise
        digests = image.attrs.get("RepoDigests") or []
        return Handle(spec.sandbox_id, agent.id, digests[0] if digests else image.id), agent

    def _image(self, name: str):
        try:
            return self._client.images.get(name)
        except docker.errors.ImageNotFound as exc:
            hint = (
                " (build it with scripts/build_test_images.sh)" if name.startswith("mleb-") else ""
            )
            raise BackendError(
                f"image {name!r} is not on this engine{hint}; images are never pulled",
                reason="IMAGE_NOT_FOUND",
            ) from exc
        except docker.errors.DockerException as exc:
            raise BackendError(f"engine error: {exc}") from exc

    def _labels(self, spec: LaunchSpec, role: str) -> dict[str, str]:
        return {**spec.labels, SANDBOX_LABEL: spec.sandbox_id, ROLE_LABEL: role}

    def _start_sidecar(self, spec: LaunchSpec) -> Container:
        routes = {HTTP_VALIDATE_PORT: "validate-http.sock", GRPC_GRADER_PORT: "grader.sock"}
        if spec.network is NetworkMode.ALLOWLIST:
            routes[EGRESS_PROXY_PORT] = "egress-proxy.sock"
        # Bind sources resolve on the engine's host, where this package may not exist (the
        # service can itself run in a container); the sockets folder is on the host by
        # design, so the forwarder travels in it.
        forwarder = spec.layout.sockets_dir / _FORWARDER_NAME
        forwarder.unlink(missing_ok=True)
        shutil.copyfile(sidecar_forwarder.__file__, forwarder)
        forwarder.chmod(0o444)
        sidecar = self._client.containers.run(
            self._sidecar_image,
            [_FORWARDER_IN_SIDECAR, *(f"{p}={_SOCKETS_IN_SIDECAR}/{s}" for p, s in routes.items())],
            name=_sidecar_name(spec.sandbox_id),
            detach=True,
            labels=self._labels(spec, "sidecar"),
            network_mode="bridge" if spec.network is NetworkMode.INTERNET else "none",
            mounts=[
                docker.types.Mount(
                    _SOCKETS_IN_SIDECAR, str(spec.layout.sockets_dir), "bind", read_only=True
                ),
            ],
            user="65534:65534",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=64 * 1024**2,
            memswap_limit=64 * 1024**2,
            pids_limit=64,
            nano_cpus=int(0.5e9),
        )
        self._await_ready(sidecar)
        return sidecar

    def _await_ready(self, sidecar: Container) -> None:
        # The agent starts only once its loopback ports answer.
        deadline = time.monotonic() + _SIDECAR_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if sidecar_forwarder.READY_LINE.encode() in sidecar.logs():
                return
            sidecar.reload()
            if sidecar.status not in {"created", "running"}:
                break
            time.sleep(0.01)
        tail = sidecar.logs(tail=5).decode(errors="replace")
        raise BackendError(f"the network sidecar did not start: {tail}", reason="RUNTIME_ERROR")

    def _agent_config(self, spec: LaunchSpec, image, sidecar: Container) -> dict[str, Any]:
        env = dict(spec.env)
        env["MLEB_GRADER_ADDR"] = f"127.0.0.1:{GRPC_GRADER_PORT}"
        env["MLEB_VALIDATE_URL"] = f"http://localhost:{HTTP_VALIDATE_PORT}/validate"
        if spec.network is NetworkMode.ALLOWLIST:
            proxy = f"http://127.0.0.1:{EGRESS_PROXY_PORT}"
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                env[name] = proxy
            env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1"
        config: dict[str, Any] = {
            "image": spec.image,
            "name": _agent_name(spec.sandbox_id),
            "labels": self._labels(spec, "agent"),
            "network_mode": f"container:{sidecar.id}",
            "mounts": self._mounts(spec),
            "nano_cpus": int(spec.cpus * 1e9),
            "mem_limit": spec.memory_bytes,
            # Equal to the memory limit: no swap, so running out of memory is a real OOM kill.
            "memswap_limit": spec.memory_bytes,
            "shm_size": spec.shm_bytes,
            "pids_limit": spec.pids_limit,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            # tini as PID 1: forwards SIGTERM and reaps zombies.
            "init": True,
        }
        if spec.gpu_uuids:
            config["device_requests"] = [
                docker.types.DeviceRequest(
                    driver="nvidia", device_ids=list(spec.gpu_uuids), capabilities=[["gpu"]]
                )
            ]
        if spec.mlebench_compat:
            # Never the image's entrypoint: MLE-bench's would start a grading server.
            env.update(
                COMPETITION_ID=spec.competition_id,
                SUBMISSION_DIR=SUBMISSION_DIR,
                LOGS_DIR=LOGS_DIR,
                CODE_DIR=CODE_DIR,
                AGENT_DIR=AGENT_DIR,
                HOME=f"/home/{MLEBENCH_USER}",
            )
            config.update(
                entrypoint=["/bin/sh", "-c", _COMPAT_PRELUDE, "start.sh"],
                command=list(spec.command),
                user="0:0",
                cap_add=_COMPAT_CAPS,
            )
        else:
            image_user = image.attrs.get("Config", {}).get("User") or ""
            config["user"] = DEFAULT_AGENT_USER if _is_root(image_user) else image_user
            if spec.command:
                config["command"] = list(spec.command)
        config["environment"] = env
        return config

    def _mounts(self, spec: LaunchSpec) -> list[docker.types.Mount]:
        layout = spec.layout
        mounts = [
            (DATA_DIR, layout.data_dir, True),
            (SUBMISSION_DIR, layout.submission_dir, False),
            (LOGS_DIR, layout.logs_dir, False),
            (CODE_DIR, layout.code_dir, False),
            (INSTRUCTIONS_FILE, layout.instructions_file, True),
            (VALIDATE_SCRIPT, layout.validate_script, True),
        ]
        return [
            docker.types.Mount(target, str(source), "bind", read_only=read_only)
            for target, source, read_only in mounts
        ]

    # Watching

    def output(self, handle: Handle, since: float = 0.0) -> AsyncIterator[OutputLine]:
        return self._output(handle, since)

    async def _output(self, handle: Handle, since: float) -> AsyncIterator[OutputLine]:
        # A reader thread follows the engine's log into `pending`; the loop takes whole
        # batches, so a busy agent costs one wake-up per batch, not one per line.
        loop = asyncio.get_running_loop()
        pending: collections.deque[OutputLine | BaseException | None] = collections.deque()
        room = threading.Condition()
        ready = asyncio.Event()
        stopped = False
        response: list[Any] = []

        def put(item: OutputLine | BaseException | None) -> bool:
            with room:
                # Bounds what a slow consumer makes us hold; the engine keeps the rest.
                while len(pending) >= _OUTPUT_BUFFER_LINES and not stopped:
                    room.wait(0.5)
                if stopped:
                    return False
                pending.append(item)
                if len(pending) == 1:
                    with contextlib.suppress(RuntimeError):  # the loop closed under us
                        loop.call_soon_threadsafe(ready.set)
            return True

        def pump() -> None:
            try:
                for line in self._read_output(handle.ref, since, response):
                    if not put(line):
                        return
            except Exception as exc:  # handed to the consumer, not lost in the thread
                put(exc)
            put(None)

        threading.Thread(target=pump, name=f"logs-{handle.sandbox_id}", daemon=True).start()
        try:
            while True:
                await ready.wait()
                with room:
                    batch = list(pending)
                    pending.clear()
                    ready.clear()
                    room.notify_all()
                for item in batch:
                    if item is None:
                        return
                    if isinstance(item, docker.errors.NotFound):
                        raise BackendError(f"container {handle.ref} is gone") from item
                    if isinstance(item, BaseException):
                        raise BackendError(f"reading output failed: {item}") from item
                    yield item
        finally:
            with room:
                stopped = True
                room.notify_all()
            # Closing a followed log blocks until the engine lets go: never on the loop.
            threading.Thread(target=_close_all, args=(response,), daemon=True).start()

    def _read_output(self, ref: str, since: float, response: list[Any]) -> Iterator[OutputLine]:
        """Follows the log to the end, then reads once more: a follow can end before the
        engine has flushed a last line without a newline, and the log is complete only
        once the container is marked exited."""
        top, at_top = since, 0  # the latest time yielded, and how many lines had it
        for line in self._read_log(ref, since, True, response):
            if line.time >= since:
                if line.time > top:
                    top, at_top = line.time, 0
                at_top += line.time == top
                yield line
        try:
            self._client.api.wait(ref)
            for line in self._read_log(ref, top, False, response):
                if line.time == top and at_top:
                    at_top -= 1
                elif line.time >= top:
                    yield line
        except docker.errors.NotFound:
            return  # removed meanwhile: what was followed is all there is

    def _read_log(
        self, ref: str, since: float, follow: bool, response: list[Any]
    ) -> Iterator[OutputLine]:
        api = self._client.api
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "follow": int(follow), "timestamps": 1}
        if since > 0:
            # A float holds engine times to ~0.2 us: ask a little early, filter exactly below.
            params["since"] = f"{since - 1e-6:.9f}"
        # The SDK's logs() merges the streams; the raw frames keep them apart.
        res = api._get(api._url("/containers/{0}/logs", ref), params=params, stream=True)
        response.append(res)
        api._raise_for_status(res)
        # Long silences are normal while following: no read timeout.
        api._disable_socket_timeout(api._get_raw_response_socket(res))
        streams = {1: OutputStream.STDOUT, 2: OutputStream.STDERR}
        while header := res.raw.read(8):
            stream_id, length = struct.unpack(">BxxxL", header)
            data = res.raw.read(length) if length else b""
            for entry in data.decode("utf-8", errors="replace").split("\n"):
                if entry:
                    stamp, _, text = entry.partition(" ")
                    yield OutputLine(
                        streams.get(stream_id, OutputStream.STDOUT), text, parse_engine_time(stamp)
                    )

    async def wait(self, handle: Handle) -> ExitInfo:
        container = await self._container(handle.ref)
        try:
            result = await self._run(self._waits, container.wait)
        except docker.errors.DockerException as exc:
            raise BackendError(f"engine error: {exc}") from exc
        await self._call(container.reload)
        state = container.attrs.get("State", {})
        return ExitInfo(int(result.get("StatusCode", -1)), bool(state.get("OOMKilled")))

    async def usage(self, handle: Handle) -> Usage:
        container = await self._container(handle.ref)
        stats = await self._call(container.stats, stream=False, one_shot=True)
        cpu_ns = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0)
        memory = stats.get("memory_stats", {})
        peak = memory.get("max_usage") or memory.get("usage") or 0
        return Usage(cpu_seconds=cpu_ns / 1e9, peak_memory_bytes=int(peak))

    async def _container(self, ref: str) -> Container:
        try:
            return await self._run(self._calls, self._client.containers.get, ref)
        except docker.errors.NotFound as exc:
            raise BackendError(f"container {ref} is gone") from exc
        except docker.errors.DockerException as exc:
            raise BackendError(f"engine error: {exc}") from exc

    # Ending

    async def stop(self, handle: Handle, grace_s: float) -> None:
        await self._call(self._stop, handle, grace_s)

    def _stop(self, handle: Handle, grace_s: float) -> None:
        # Docker's stop is SIGTERM, then SIGKILL after the timeout.
        for name, timeout in ((handle.ref, grace_s), (_sidecar_name(handle.sandbox_id), 0)):
            with contextlib.suppress(docker.errors.NotFound):
                try:
                    self._client.containers.get(name).stop(timeout=max(0, round(timeout)))
                except docker.errors.APIError as exc:
                    if exc.status_code not in (304, 404):
                        raise BackendError(f"engine error: {exc}") from exc

    async def remove(self, handle: Handle) -> None:
        await self._call(self._remove_all, handle.sandbox_id, handle.ref)

    def _remove_all(self, sandbox_id: str, ref: str = "") -> None:
        containers = self._list(filters={"label": f"{SANDBOX_LABEL}={sandbox_id}"})
        ids = {c.id for c in containers} | ({ref} if ref else set())
        for container_id in ids:
            with contextlib.suppress(docker.errors.NotFound):
                try:
                    self._client.api.remove_container(container_id, force=True, v=True)
                except docker.errors.APIError as exc:
                    if exc.status_code not in (404, 409):  # 409: removal already under way
                        raise BackendError(f"engine error: {exc}") from exc

    async def list_owned(self, instance_labels: dict[str, str]) -> list[tuple[Handle, bool]]:
        return await self._call(self._list_owned, instance_labels)

    def _list(self, filters: dict[str, Any]) -> list[Container]:
        # The SDK inspects each listed container; one removed meanwhile (another sandbox
        # finishing) must not fail the whole listing.
        return self._client.containers.list(all=True, filters=filters, ignore_removed=True)

    def _list_owned(self, instance_labels: dict[str, str]) -> list[tuple[Handle, bool]]:
        filters = {"label": [f"{k}={v}" for k, v in instance_labels.items()]}
        containers = self._list(filters=filters)
        agents = [c for c in containers if c.labels.get(ROLE_LABEL) == "agent"]
        with_agent = {c.labels.get(SANDBOX_LABEL) for c in agents}
        for sidecar in containers:
            # A sidecar without its agent is debris of a launch that was cut short.
            if sidecar.labels.get(ROLE_LABEL) == "sidecar":
                sandbox_id = sidecar.labels.get(SANDBOX_LABEL, "")
                if sandbox_id not in with_agent:
                    self._remove_all(sandbox_id, sidecar.id)
        return [
            (
                Handle(c.labels[SANDBOX_LABEL], c.id, c.attrs.get("Image", "")),
                c.status == "running",
            )
            for c in agents
        ]
