"""The Docker backend: each sandbox is an agent container plus a network sidecar.

The sidecar owns the sandbox's network namespace. It has no route out (network none, only
loopback) and forwards 127.0.0.1:5000 / :50052 / :3128 to the host's Unix sockets in the
sandbox's sockets directory (see services.sandbox.node.endpoints). The agent joins that namespace,
so MLE-bench's `localhost:5000` works and nothing else is reachable. Internet mode gives the
sidecar a bridge network instead, so the same ports work and the internet is reachable too.

The docker SDK blocks, so every engine call runs in a thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import io
import os
import shutil
import struct
import tarfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import docker
import docker.errors
import docker.types
import structlog
from docker.models.containers import Container

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
    BackendProvider,
    BackendUnavailable,
    Capabilities,
    ExitInfo,
    GpuAllocation,
    Handle,
    LaunchSpec,
    NetworkMode,
    OnServiceHost,
    OutputLine,
    OutputStream,
    Usage,
)
from services.sandbox.backends.docker import agent_identity, compat_home
from services.sandbox.gpus.simulated_nvml import is_simulated
from services.sandbox.lifecycle.phases import Phases
from services.sandbox.node import sidecar_forwarder

if TYPE_CHECKING:
    import requests  # the docker SDK's HTTP client

    from services.sandbox.config import SandboxSettings

log = structlog.get_logger("mleb.sandbox.docker")

SANDBOX_LABEL = "mleb.sandbox.id"
ROLE_LABEL = "mleb.role"
DEFAULT_SIDECAR_IMAGE = "mleb-sidecar"
MLEBENCH_USER = "nonroot"
# How often, and how far apart, an exit by SIGKILL is looked at again for the engine's OOM
# event (Docker backend `wait`).
OOM_EVENT_CHECKS = 5
OOM_EVENT_WAIT_S = 0.1

_SOCKETS_IN_SIDECAR = "/run/mleb"
_FORWARDER_NAME = "sidecar_forwarder.py"
_FORWARDER_IN_SIDECAR = f"{_SOCKETS_IN_SIDECAR}/{_FORWARDER_NAME}"
_SIDECAR_READY_TIMEOUT_S = 15.0
# Enough of the sidecar's output to hold the ready line split across reads.
_READY_WINDOW = 4 * len(sidecar_forwarder.READY_LINE)
# Engine calls in flight at once: every start of a burst reaches the engine without waiting
# on this pool (a start holds a thread throughout); the engine does its own queueing.
_ENGINE_THREADS = 64
# Lines, and characters of text, the log reader may hold for a slow consumer before it
# stops reading from the engine: the engine's lines are up to 16 KiB each, so the line
# count alone would let 4096 long lines hold 64 MiB per sandbox.
_OUTPUT_BUFFER_LINES = 4096
_OUTPUT_BUFFER_CHARS = 1 << 20

# The sandbox's own mounts: compat mode leaves them out of the image's /home it rewrites.
_MOUNT_TARGETS = (DATA_DIR, SUBMISSION_DIR, LOGS_DIR, CODE_DIR, INSTRUCTIONS_FILE, VALIDATE_SCRIPT)
# What the engine returns for a /home that does not exist in the image: an empty archive.
_EMPTY_HOME = bytes(1024)
# An image's /home larger than this is refused in compat mode rather than copied.
COMPAT_HOME_MAX_BYTES = 2 * 1024**3
# /etc/passwd and /etc/group larger than this are ignored (the default identity is used).
_ACCOUNT_FILE_MAX_BYTES = 1024**2

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


def engine_error(exc: docker.errors.DockerException) -> BackendError:
    """An engine failure in words a client may see: the daemon's explanation, never the
    SDK's text, which carries the engine's URL."""
    explanation = getattr(exc, "explanation", None)
    return BackendError(f"engine error: {explanation or type(exc).__name__}")


def _start_failure(exc: docker.errors.APIError) -> BackendError:
    text = str(exc)
    if "nvidia" in text or "device driver" in text or "gpu" in text.lower():
        return BackendError(f"GPU runtime unavailable: {exc.explanation}", reason="GPU_UNAVAILABLE")
    if "OCI runtime" in text or "runc" in text:
        return BackendError(f"container runtime failed: {exc.explanation}", reason="RUNTIME_ERROR")
    return engine_error(exc)


def open_log_stream(
    api: docker.APIClient,
    ref: str,
    params: dict[str, Any],
    keep: Callable[[requests.Response], object],
) -> requests.Response:
    """Opens GET /containers/{ref}/logs and returns the response with its raw body unread:
    the engine's multiplexed frames, each an 8-byte header (stream id, length) and a payload.

    This is the one place that uses private members of the docker SDK (pinned at 7.1.0;
    tests/unit/sandbox/test_docker_sdk_contract.py fails if any of them changes):

    - ``APIClient._url``: the versioned endpoint URL for the container;
    - ``APIClient._get``: the GET with the client's headers, left unread (``stream=True``);
    - ``APIClient._raise_for_status``: engine errors as ``docker.errors`` (a 404 is
      ``NotFound``, which the caller reports as a container that is gone);
    - ``APIClient._get_raw_response_socket`` and ``APIClient._disable_socket_timeout``: no
      read timeout on the socket, since a followed log is silent for as long as the agent is.

    Why not the public ``APIClient.logs`` / ``Container.logs``: their stream yields only each
    frame's payload, so stdout and stderr arrive merged with no way to tell them apart, and
    logs() has no ``demux``. Two public calls (stdout only, stderr only) would keep them apart
    but lose the engine's order across the streams: a followed merge of the two cannot be put
    in time order without waiting on whichever stream is silent, and ``_read_output``'s resume
    (skip what was yielded at the latest timestamp, in the engine's order) relies on one
    ordered log. ``keep`` receives the response before anything can fail, so the caller can
    close it from another thread.
    """
    res = api._get(api._url("/containers/{0}/logs", ref), params=params, stream=True)
    keep(res)
    api._raise_for_status(res)
    api._disable_socket_timeout(api._get_raw_response_socket(res))
    return res


def _missing_image(name: str) -> BackendError:
    hint = " (build it with scripts/build_test_images.sh)" if name.startswith("mleb-") else ""
    return BackendError(
        f"image {name!r} is not on this engine{hint}; images are never pulled",
        reason="IMAGE_NOT_FOUND",
    )


def _close_all(responses: list[Any]) -> None:
    for response in responses:
        with contextlib.suppress(Exception):
            response.close()


def _refuse_mlebench_entrypoint(image, spec: LaunchSpec) -> None:
    """An MLE-bench agent image run as it is starts MLE-bench's entrypoint, whose grading
    server wants port 5000 (ours) and answers that are not there: say what to do instead."""
    config = image.attrs.get("Config", {})
    env_names = {item.partition("=")[0] for item in config.get("Env") or []}
    if (
        not spec.mlebench_compat
        and config.get("Entrypoint")
        and {"AGENT_DIR", "SUBMISSION_DIR"} <= env_names
    ):
        raise BackendError(
            f"image {spec.image!r} looks like an MLE-bench agent image (AGENT_DIR and "
            f"SUBMISSION_DIR set, with an entrypoint that would start MLE-bench's grading "
            f"server); run it with MLE-bench compat mode (mleb run --mlebench-compat, or "
            f"mlebench_compat in CreateSandbox)",
            reason="IMAGE_UNSUPPORTED",
        )


def _own_outputs(spec: LaunchSpec, identity: agent_identity.AgentIdentity) -> None:
    """Only the engine reaches inside a sandbox's folder (through its mounts): other host
    users cannot even traverse it, so nothing the agent leaves there (a setuid file, say)
    can be run by them. The output folders belong to the agent's uid, or are open to any
    uid where the service cannot change owners."""
    layout = spec.layout
    layout.root.chmod(0o700)
    for folder in (layout.submission_dir, layout.logs_dir, layout.code_dir):
        if os.geteuid() == 0:
            os.chown(folder, identity.uid, identity.gid, follow_symlinks=False)
            folder.chmod(0o700)
        else:
            folder.chmod(0o777)


def gpu_settings(gpu_uuids: Sequence[str]) -> tuple[dict[str, str], list[Any]]:
    """The agent's GPUs as the engine takes them: a device request for the NVIDIA runtime,
    or for simulated GPUs (MLEB_SANDBOX_SIMULATED_GPUS) their names alone, no device."""
    if not gpu_uuids:
        return {}, []
    if all(map(is_simulated, gpu_uuids)):
        names = ",".join(gpu_uuids)
        return {"CUDA_VISIBLE_DEVICES": names, "NVIDIA_VISIBLE_DEVICES": names}, []
    request = docker.types.DeviceRequest(
        driver="nvidia", device_ids=list(gpu_uuids), capabilities=[["gpu"]]
    )
    return {}, [request]


CAPABILITIES = Capabilities(
    needs_image=True,
    security_boundary=True,
    mounts_public_cache=True,
    gpu_allocation=GpuAllocation.SERVICE_NVML,
    outputs_on_host=True,
)


class DockerBackend(OnServiceHost):
    name = "docker"
    capabilities = CAPABILITIES

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
        self._calls = ThreadPoolExecutor(_ENGINE_THREADS, thread_name_prefix="docker-call")
        # A sidecar starts in its own thread while its launch goes on to create the agent.
        self._sidecar_starts = ThreadPoolExecutor(_ENGINE_THREADS, thread_name_prefix="sidecar")
        self._waits = ThreadPoolExecutor(4096, thread_name_prefix="docker-wait")
        # Resolved agent identities by (image id, image user): an image id is immutable.
        self._identities: dict[tuple[str, str], agent_identity.AgentIdentity] = {}
        self._identities_lock = threading.Lock()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A short engine call; any engine error is an infrastructure failure."""
        try:
            return await self._run(self._calls, fn, *args, **kwargs)
        except docker.errors.DockerException as exc:
            raise engine_error(exc) from exc

    async def _run(
        self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))

    # Launch

    async def launch(self, spec: LaunchSpec) -> Handle:
        return await self._call(self._launch, spec)

    def _launch(self, spec: LaunchSpec) -> Handle:
        phases = Phases()
        image = self._image(spec.image)
        _refuse_mlebench_entrypoint(image, spec)
        identity = self._identity(image, spec)
        _own_outputs(spec, identity)
        phases.mark("image")
        try:
            sidecar = self._create_sidecar(spec)
            phases.mark("sidecar_create")
            # The agent's container names the sidecar's namespace but needs it running only
            # when it starts itself: the sidecar starts while the agent is created.
            ready = self._sidecar_starts.submit(self._start_sidecar, sidecar)
            try:
                agent = self._create_agent(spec, image, sidecar, identity)
                phases.mark("agent_create")
            finally:
                futures.wait([ready])  # never removed under a start still in flight
            ready.result()
            phases.mark("sidecar_ready")
            try:
                agent.start()
            except docker.errors.APIError as exc:
                raise _start_failure(exc) from exc
            phases.mark("agent_start")
        except BaseException:
            self._remove_all(spec.sandbox_id)
            raise
        log.info("sandbox_engine_phases", sandbox_id=spec.sandbox_id, **phases.ms)
        digests = image.attrs.get("RepoDigests") or []
        return Handle(spec.sandbox_id, agent.id, digests[0] if digests else image.id)

    def _create_agent(
        self, spec: LaunchSpec, image, sidecar: str, identity: agent_identity.AgentIdentity
    ) -> Container:
        home = self._compat_home(image, spec) if spec.mlebench_compat else None
        with home or contextlib.nullcontext():
            agent = self._client.containers.create(
                **self._agent_config(spec, image, sidecar, identity)
            )
            if home is not None:
                self._client.api.put_archive(agent.id, "/", home)
        return agent

    # The image's files, read from a container that is created but never started: nothing
    # from the image runs, and the sandbox's mounts are not there.

    @contextlib.contextmanager
    def _probe(self, image_id: str, spec: LaunchSpec) -> Iterator[str]:
        created = self._client.api.create_container(
            image_id,
            entrypoint=["/mleb-probe-never-started"],
            network_disabled=True,
            labels=self._labels(spec, "probe"),
        )
        try:
            yield created["Id"]
        finally:
            self._remove_one(created["Id"])

    def _account_file(self, probe: str, path: str) -> str:
        try:
            chunks, _ = self._client.api.get_archive(probe, path)
        except docker.errors.NotFound:
            return ""
        data = bytearray()
        for chunk in chunks:
            data += chunk
            if len(data) > _ACCOUNT_FILE_MAX_BYTES + 2048:  # the file, its header, the end
                return ""  # a giant: resolved as if absent
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                member = tar.next()
                body = tar.extractfile(member) if member and member.isreg() else None
                if body is None:
                    return ""  # a link or anything else: resolved as if absent
                return body.read().decode("utf-8", errors="replace")
        except tarfile.TarError:
            return ""

    def _identity(self, image, spec: LaunchSpec) -> agent_identity.AgentIdentity:
        image_user = (
            MLEBENCH_USER
            if spec.mlebench_compat
            else image.attrs.get("Config", {}).get("User") or ""
        )
        key = (image.id, image_user)
        with self._identities_lock:
            if key in self._identities:
                return self._identities[key]
        files = ("", "")
        if agent_identity.needs_image_files(image_user):
            with self._probe(image.id, spec) as probe:
                files = (
                    self._account_file(probe, "/etc/passwd"),
                    self._account_file(probe, "/etc/group"),
                )
        identity = agent_identity.resolve(image_user, *files)
        if identity.note:
            log.info("agent_user_replaced", image=image.id, uid=identity.uid, why=identity.note)
        with self._identities_lock:
            self._identities[key] = identity
        return identity

    def _compat_home(self, image, spec: LaunchSpec) -> IO[bytes]:
        with self._probe(image.id, spec) as probe:
            try:
                chunks, _ = self._client.api.get_archive(probe, "/home")
            except docker.errors.NotFound:
                chunks = iter([_EMPTY_HOME])
            return compat_home.writable_home(chunks, _MOUNT_TARGETS, COMPAT_HOME_MAX_BYTES)

    def _image(self, name: str):
        try:
            return self._client.images.get(name)
        except docker.errors.ImageNotFound as exc:
            raise _missing_image(name) from exc
        except docker.errors.APIError as exc:
            if exc.is_client_error():  # the engine refuses the reference itself
                raise BackendError(
                    f"the engine refuses image {name!r}: {exc.explanation}",
                    reason="IMAGE_UNSUPPORTED",
                ) from exc
            raise engine_error(exc) from exc
        except docker.errors.DockerException as exc:
            raise engine_error(exc) from exc

    def _labels(self, spec: LaunchSpec, role: str) -> dict[str, str]:
        return {**spec.labels, SANDBOX_LABEL: spec.sandbox_id, ROLE_LABEL: role}

    def _create_sidecar(self, spec: LaunchSpec) -> str:
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
        api = self._client.api
        host_config = api.create_host_config(
            network_mode="bridge" if spec.network is NetworkMode.INTERNET else "none",
            mounts=[
                docker.types.Mount(
                    _SOCKETS_IN_SIDECAR, str(spec.layout.sockets_dir), "bind", read_only=True
                ),
            ],
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=64 * 1024**2,
            memswap_limit=64 * 1024**2,
            pids_limit=64,
            nano_cpus=int(0.5e9),
        )
        try:
            created = api.create_container(
                self._sidecar_image,
                [
                    _FORWARDER_IN_SIDECAR,
                    *(f"{p}={_SOCKETS_IN_SIDECAR}/{s}" for p, s in routes.items()),
                ],
                name=_sidecar_name(spec.sandbox_id),
                labels=self._labels(spec, "sidecar"),
                user="65534:65534",
                host_config=host_config,
                use_config_proxy=False,
            )
        except docker.errors.ImageNotFound as exc:
            raise _missing_image(self._sidecar_image) from exc
        return str(created["Id"])

    def _start_sidecar(self, sidecar: str) -> None:
        """Starts the sidecar and returns once its loopback ports answer, as its ready line
        says: followed on one log stream, not polled, so a burst of starts does not flood
        the engine with requests."""
        api = self._client.api
        api.start(sidecar)
        stream = api.logs(sidecar, stream=True, follow=True)
        give_up = threading.Timer(_SIDECAR_READY_TIMEOUT_S, stream.close)
        give_up.start()
        seen = b""
        try:
            for chunk in stream:  # ends when the sidecar exits, or give_up closes it
                seen = (seen + chunk)[-_READY_WINDOW:]
                if sidecar_forwarder.READY_LINE.encode() in seen:
                    return
        finally:
            give_up.cancel()
            stream.close()
        tail = api.logs(sidecar, tail=5).decode(errors="replace")
        raise BackendError(f"the network sidecar did not start: {tail}", reason="RUNTIME_ERROR")

    def _agent_config(
        self, spec: LaunchSpec, image, sidecar: str, identity: agent_identity.AgentIdentity
    ) -> dict[str, Any]:
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
            "network_mode": f"container:{sidecar}",
            "mounts": self._mounts(spec),
            "nano_cpus": int(spec.cpus * 1e9),
            "mem_limit": spec.memory_bytes,
            # Equal to the memory limit: no swap, so running out of memory is a real OOM kill.
            "memswap_limit": spec.memory_bytes,
            "shm_size": spec.shm_bytes,
            # A tmpfs is charged to the memory cgroup: /tmp fills memory, never the host disk.
            "tmpfs": {
                "/tmp": f"size={spec.tmp_bytes or spec.memory_bytes // 2},mode=1777,nosuid,nodev"
            },
            "pids_limit": spec.pids_limit,
            # The engine's own copy of the output, on the host's disk, is bounded too.
            "log_config": docker.types.LogConfig(
                type="json-file", config={"max-size": "64m", "max-file": "4"}
            ),
            # Always numeric and never 0, whatever the image says (see agent_identity).
            "user": identity.engine_user,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            # tini as PID 1: forwards SIGTERM and reaps zombies.
            "init": True,
        }
        gpu_env, device_requests = gpu_settings(spec.gpu_uuids)
        env.update(gpu_env)
        if device_requests:
            config["device_requests"] = device_requests
        if spec.gpu_devices:
            config["devices"] = [f"{p}:/dev/{Path(p).name}:rwm" for p in spec.gpu_devices]
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
            config["entrypoint"] = ["bash", f"{AGENT_DIR}/start.sh"]
            config["command"] = list(spec.command)
        elif spec.command:
            config["command"] = list(spec.command)
        config["environment"] = env
        return config

    def _mounts(self, spec: LaunchSpec) -> list[docker.types.Mount]:
        layout = spec.layout
        mounts = [
            (DATA_DIR, layout.data_source, True),
            (SUBMISSION_DIR, layout.submission_dir, False),
            (LOGS_DIR, layout.logs_dir, False),
            (CODE_DIR, layout.code_dir, False),
            (INSTRUCTIONS_FILE, layout.instructions_file, True),
            (VALIDATE_SCRIPT, layout.validate_script, True),
        ]
        if layout.public_dir is not None:
            # Shared by every sandbox of the competition; the description is this sandbox's.
            mounts.append((f"{DATA_DIR}/description.md", layout.description_file, True))
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
        held = 0  # characters of text in pending
        room = threading.Condition()
        ready = asyncio.Event()
        stopped = False
        response: list[Any] = []

        def put(item: OutputLine | BaseException | None) -> bool:
            nonlocal held
            with room:
                # Bounds what a slow consumer makes us hold; the engine keeps the rest.
                while (
                    len(pending) >= _OUTPUT_BUFFER_LINES or held >= _OUTPUT_BUFFER_CHARS
                ) and not stopped:
                    room.wait(0.5)
                if stopped:
                    return False
                pending.append(item)
                if isinstance(item, OutputLine):
                    held += len(item.text)
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
                    held = 0
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
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "follow": int(follow), "timestamps": 1}
        if since > 0:
            # A float holds engine times to ~0.2 us: ask a little early, filter exactly below.
            params["since"] = f"{since - 1e-6:.9f}"
        res = open_log_stream(self._client.api, ref, params, response.append)
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

    # By reference on the low-level API: the models' get() would inspect the container first,
    # one more engine request per call from every running sandbox.

    async def wait(self, handle: Handle) -> ExitInfo:
        try:
            result = await self._run(self._waits, self._client.api.wait, handle.ref)
            code = int(result.get("StatusCode", -1))
            state = (await self._call_on(handle, self._client.api.inspect_container))["State"]
            # On cgroup v1 the engine learns of an OOM kill from an event of its own, which
            # may come just after the exit: a SIGKILL's exit is looked at again, briefly.
            for _ in range(OOM_EVENT_CHECKS if code == 137 else 0):
                if state.get("OOMKilled"):
                    break
                await asyncio.sleep(OOM_EVENT_WAIT_S)
                state = (await self._call_on(handle, self._client.api.inspect_container))["State"]
        except docker.errors.NotFound as exc:
            raise BackendError(f"container {handle.ref} is gone") from exc
        except docker.errors.DockerException as exc:
            raise engine_error(exc) from exc
        return ExitInfo(code, bool(state.get("OOMKilled")))

    async def usage(self, handle: Handle) -> Usage:
        stats = await self._call_on(handle, self._client.api.stats, stream=False, one_shot=True)
        cpu_ns = stats.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0)
        memory = stats.get("memory_stats", {})
        peak = memory.get("max_usage") or memory.get("usage") or 0
        return Usage(cpu_seconds=cpu_ns / 1e9, peak_memory_bytes=int(peak))

    async def writable_layer_bytes(self, handle: Handle) -> int | None:
        listed = await self._call(
            self._client.api.containers, all=True, size=True, filters={"id": handle.ref}
        )
        if not listed:
            raise BackendError(f"container {handle.ref} is gone")
        return int(listed[0].get("SizeRw") or 0)

    async def _call_on(self, handle: Handle, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A short engine call on the agent's container, which may be gone."""
        try:
            return await self._run(self._calls, fn, handle.ref, *args, **kwargs)
        except docker.errors.NotFound as exc:
            raise BackendError(f"container {handle.ref} is gone") from exc
        except docker.errors.DockerException as exc:
            raise engine_error(exc) from exc

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
                        raise engine_error(exc) from exc

    async def remove(self, handle: Handle) -> None:
        await self._call(self._remove_all, handle.sandbox_id, handle.ref)

    def _remove_all(self, sandbox_id: str, ref: str = "") -> None:
        containers = self._list(filters={"label": f"{SANDBOX_LABEL}={sandbox_id}"})
        for container_id in {c.id for c in containers} | ({ref} if ref else set()):
            self._remove_one(container_id)

    def _remove_one(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            try:
                self._client.api.remove_container(container_id, force=True, v=True)
            except docker.errors.APIError as exc:
                if exc.status_code not in (404, 409):  # 409: removal already under way
                    raise engine_error(exc) from exc

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
        for debris in containers:
            # A sidecar without its agent, or an image probe, is debris of a launch that was
            # cut short.
            role = debris.labels.get(ROLE_LABEL)
            sandbox_id = debris.labels.get(SANDBOX_LABEL, "")
            if role == "probe":
                self._remove_one(debris.id)
            elif role == "sidecar" and sandbox_id not in with_agent:
                self._remove_all(sandbox_id, debris.id)
        return [
            (
                Handle(c.labels[SANDBOX_LABEL], c.id, c.attrs.get("Image", "")),
                c.status == "running",
            )
            for c in agents
        ]


def _build(settings: SandboxSettings) -> DockerBackend:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise BackendUnavailable(
            "MLEB_SANDBOX_BACKEND=docker but no Docker engine answers", reason="NO_DOCKER_ENGINE"
        ) from exc
    extra = {"sidecar_image": settings.sidecar_image} if settings.sidecar_image else {}
    return DockerBackend(client, **extra)


PROVIDER = BackendProvider(DockerBackend.name, CAPABILITIES, _build)
