"""The Kubernetes backend: each sandbox is a Pod (services.sandbox.backends.kubernetes.pod),
created through the official client, placed by the cluster's scheduler with its GPUs as
`nvidia.com/gpu`.

Nothing crosses a host path. Public data comes from the registry into the Pod (its `stage`
init container); the agent's endpoints are served in the Pod (its `endpoints` container);
output lines are read, and resumed by timestamp, through the log API; once the agent has
ended, its outputs come back as a tar through the exec API into the sandbox's folder on the
service's host, which the core then reads as for any backend; stop is an exec that signals
the agent. The Pod's activeDeadlineSeconds backs up the service's own time limit.

Reconcile finds this instance's Pods by label. Which APIs are used, and which versions of
Kubernetes they are stable in: docs/deploy.md.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from mleb.lab.artifact_extraction import UnsafeArchive, extract_artifacts

from services.common.errors import FailedPreconditionError, invalid_field
from services.sandbox.backends.base import (
    BackendError,
    BackendProvider,
    Capabilities,
    ExitInfo,
    GpuAllocation,
    Handle,
    LaunchSpec,
    NetworkMode,
    OutputLine,
    OutputStream,
    Usage,
)
from services.sandbox.backends.kubernetes import pod as pods
from services.sandbox.config import SandboxSettings
from services.sandbox.node import pod_sidecar

if TYPE_CHECKING:
    from services.sandbox.node.egress_proxy import EgressSums
    from services.sandbox.records import SandboxRequest

log = structlog.get_logger("mleb.sandbox")

T = TypeVar("T")
# How long a stop's exec may take beyond the grace period before the Pod is deleted.
STOP_MARGIN_S = 15.0
# Waiting reasons that never clear on their own.
_IMAGE_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
)
_CONFIG_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
# Pod-level reasons for which Kubernetes itself ended the agent: not the agent's failure.
_LOST_REASONS = frozenset({"DeadlineExceeded", "Evicted", "Preempting", "NodeLost", "Shutdown"})
# Log streams each hold a thread for the whole run; they get their own pool.
_LOG_THREADS = 256
_CONNECT_TIMEOUT_S = 10.0
_LOG_IDLE_S = 300.0

CAPABILITIES = Capabilities(
    needs_image=True,
    security_boundary=True,
    mounts_public_cache=True,
    gpu_allocation=GpuAllocation.SCHEDULER,
    # Collected into the sandbox's folder on the service's host once the agent has ended.
    outputs_on_host=True,
    endpoints_on_node=True,
)


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"MLEB_K8S_{name}", default)


@dataclass(frozen=True)
class KubernetesSettings:
    """MLEB_K8S_* (docs/deploy.md)."""

    namespace: str = "default"
    # Empty: the in-cluster configuration of the service's own Pod.
    kubeconfig: str = ""
    # The mleb image the Pod's stage and endpoints containers run.
    node_image: str = "mleb-server"
    image_pull_policy: str = "IfNotPresent"
    agent_uid: int = 1000
    # The registry and the grader as Pods reach them.
    registry_addr: str = ""
    grader_addr: str = ""
    poll_interval_s: float = 1.0

    @classmethod
    def from_env(cls) -> KubernetesSettings:
        uid = _env("AGENT_UID", str(cls.agent_uid))
        if not uid.isdigit() or int(uid) == 0:
            raise invalid_field("MLEB_K8S_AGENT_UID", "a user id other than root's (0)")
        poll = _env("POLL_INTERVAL_S", str(cls.poll_interval_s))
        try:
            poll_s = float(poll)
        except ValueError as exc:
            raise invalid_field("MLEB_K8S_POLL_INTERVAL_S", f"not a number: {poll!r}") from exc
        if not math.isfinite(poll_s) or poll_s <= 0:
            raise invalid_field("MLEB_K8S_POLL_INTERVAL_S", "a positive number of seconds")
        pull = _env("IMAGE_PULL_POLICY", cls.image_pull_policy)
        if pull not in ("Always", "IfNotPresent", "Never"):
            raise invalid_field("MLEB_K8S_IMAGE_PULL_POLICY", "Always, IfNotPresent or Never")
        return cls(
            namespace=_env("NAMESPACE", cls.namespace),
            kubeconfig=_env("KUBECONFIG"),
            node_image=_env("NODE_IMAGE", cls.node_image),
            image_pull_policy=pull,
            agent_uid=int(uid),
            registry_addr=_env("REGISTRY_ADDR", os.environ.get("MLEB_REGISTRY_ADDR", "")),
            grader_addr=_env("GRADER_ADDR", os.environ.get("MLEB_GRADER_ADDR", "")),
            poll_interval_s=poll_s,
        )


class Gone(BackendError):
    """The object is not there (404)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="LOST")


def _api_error(what: str, exc: Exception) -> BackendError:
    """What the API (or the way to it) answered, as a BackendError; the body is left out,
    as it may quote the request."""
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None) or type(exc).__name__
    if status == 404:
        return Gone(f"Kubernetes could not {what}: not found")
    return BackendError(f"Kubernetes could not {what}: {status or ''} {reason}".replace("  ", " "))


class KubernetesBackend:
    name = "kubernetes"
    capabilities = CAPABILITIES

    def __init__(self, settings: SandboxSettings, k8s: KubernetesSettings) -> None:
        from kubernetes import client, config

        for name, value in (("REGISTRY_ADDR", k8s.registry_addr), ("GRADER_ADDR", k8s.grader_addr)):
            if not value:
                raise invalid_field(
                    f"MLEB_K8S_{name}", "the address as the cluster's Pods reach it is required"
                )
        instance = f"{settings.node}.{settings.instance_id}"
        if not pods.LABEL_VALUE.fullmatch(instance):
            raise invalid_field(
                "MLEB_SANDBOX_INSTANCE_ID",
                "letters, digits, '.', '_' and '-' only on Kubernetes (a label value)",
            )
        if k8s.kubeconfig:
            self._api_client = config.new_client_from_config(k8s.kubeconfig)
        else:
            config.load_incluster_config()
            self._api_client = client.ApiClient()
        self._core = client.CoreV1Api(self._api_client)
        self._k8s = k8s
        self._pod = pods.PodSettings(
            namespace=k8s.namespace,
            node_image=k8s.node_image,
            image_pull_policy=k8s.image_pull_policy,
            agent_uid=k8s.agent_uid,
            registry_addr=k8s.registry_addr,
            grader_addr=k8s.grader_addr,
            instance=instance,
        )
        self._sandboxes_dir = settings.work_dir / "sandboxes"
        self._scratch_dir = settings.work_dir
        self._max_artifacts_bytes = settings.max_artifacts_bytes
        self._stop_grace_s = settings.stop_grace_s
        self._log_threads = ThreadPoolExecutor(_LOG_THREADS, thread_name_prefix="mleb-k8s-logs")
        self._collected: set[str] = set()

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except Exception as exc:
            raise _api_error(what, exc) from exc

    # Admission and launch

    async def admit(self, request: SandboxRequest) -> None:
        if request.network is NetworkMode.ALLOWLIST:
            raise FailedPreconditionError(
                "network 'allowlist' is not available on Kubernetes: a NetworkPolicy selects "
                "addresses, not host names; use 'none' or 'internet'",
                reason="NETWORK_MODE_NOT_SUPPORTED",
            )
        if request.mlebench_compat:
            raise FailedPreconditionError(
                "mlebench_compat needs the agent to run as root, which Kubernetes sandboxes "
                "never do",
                reason="COMPAT_NOT_SUPPORTED",
            )
        bad = [name for name in request.env if not pods.ENV_NAME.fullmatch(name)]
        bad += [name for name in request.secret_env if not pods.ENV_NAME.fullmatch(name)]
        if bad:
            raise invalid_field("env", f"{bad[0][:64]!r} is not a variable name a Pod accepts")

    async def launch(self, spec: LaunchSpec) -> Handle:
        name = pods.pod_name(spec.sandbox_id)
        try:
            files = await asyncio.to_thread(_pod_files, spec)
        except OSError as exc:
            raise BackendError(f"the sandbox's files could not be read: {exc.strerror}") from exc
        # A start retried after a crash finds what the last try left: start afresh.
        await self._delete(name)
        secret = pods.secret_manifest(spec, self._pod, files)
        await self._call(
            "create the sandbox's Secret",
            self._core.create_namespaced_secret,
            self._pod.namespace,
            secret,
        )
        manifest = pods.pod_manifest(spec, self._pod, spec.listing_digest, spec.stop_grace_s)
        try:
            pod = await self._call(
                "create the sandbox's Pod",
                self._core.create_namespaced_pod,
                self._pod.namespace,
                manifest,
            )
        except BaseException:
            await self._delete(name)
            raise
        # The Secret goes with the Pod, whoever deletes it (Kubernetes' garbage collector).
        owner = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod.metadata.uid}
        try:
            await self._call(
                "tie the Secret to the Pod",
                self._core.patch_namespaced_secret,
                name,
                self._pod.namespace,
                {"metadata": {"ownerReferences": [owner]}},
            )
        except BackendError as exc:  # remove() still deletes it
            log.warning("k8s_secret_owner_failed", sandbox_id=spec.sandbox_id, error=str(exc))
        return Handle(spec.sandbox_id, name)

    async def _read_pod(self, handle: Handle) -> Any:
        try:
            return await self._call(
                "read the sandbox's Pod",
                self._core.read_namespaced_pod,
                handle.ref,
                self._pod.namespace,
            )
        except Gone as exc:
            raise BackendError(
                f"Pod {handle.ref} is gone: deleted, or lost with its node", reason="LOST"
            ) from exc

    async def started(self, handle: Handle) -> Handle:
        while True:
            pod = await self._read_pod(handle)
            _raise_if_stuck(pod)
            agent = _status(pod, pods.AGENT)
            state = agent.state if agent is not None else None
            if state is not None and (state.running or state.terminated):
                at = (state.running or state.terminated).started_at
                return Handle(
                    handle.sandbox_id,
                    handle.ref,
                    agent.image_id or "",
                    placement=f"Pod {handle.ref} on node {pod.spec.node_name}",
                    started_at=at.timestamp() if at else 0.0,
                )
            if pod.status.phase in ("Failed", "Succeeded"):
                raise BackendError(
                    f"Pod {handle.ref} ended ({pod.status.reason or pod.status.phase}) "
                    "before the agent started",
                    reason="LOST",
                )
            await asyncio.sleep(self._k8s.poll_interval_s)

    # Watching

    async def output(self, handle: Handle, since: float = 0.0) -> AsyncIterator[OutputLine]:
        loop = asyncio.get_running_loop()
        while True:
            response = await loop.run_in_executor(
                self._log_threads, self._open_log, handle.ref, since
            )
            if response is None:  # the agent has not started yet
                await asyncio.sleep(self._k8s.poll_interval_s)
                continue
            # A resumed stream starts again before the last line: skip what was read.
            resume_after = since
            try:
                while raw := await loop.run_in_executor(self._log_threads, _read_line, response):
                    line = _parse_log_line(raw)
                    if line is not None and line.time > resume_after:
                        since = line.time
                        yield line
            finally:
                # Unblocks a read still waiting in its thread (the reader was cancelled).
                response.shutdown()
                response.release_conn()
            # The stream ends with the container, or with the connection: then resume.
            agent = _status(await self._read_pod(handle), pods.AGENT)
            if agent is not None and agent.state.terminated:
                return

    def _open_log(self, name: str, since: float) -> Any:
        # Resuming: from a minute before the last line read (the node's clock may differ
        # from this host's), the lines already read skipped by time.
        resume = {"since_seconds": math.ceil(time.time() - since) + 60} if since else {}
        try:
            return self._core.read_namespaced_pod_log(
                name,
                self._pod.namespace,
                container=pods.AGENT,
                follow=True,
                timestamps=True,
                _preload_content=False,
                # A stream silent this long is opened again: a dead connection may never end.
                _request_timeout=(_CONNECT_TIMEOUT_S, _LOG_IDLE_S),
                **resume,
            )
        except Exception as exc:
            if getattr(exc, "status", None) == 400:  # waiting to start
                return None
            raise _api_error("read the agent's log", exc) from exc

    async def wait(self, handle: Handle) -> ExitInfo:
        while True:
            pod = await self._read_pod(handle)
            agent = _status(pod, pods.AGENT)
            ended = agent.state.terminated if agent is not None else None
            if pod.status.reason in _LOST_REASONS:
                raise BackendError(
                    f"Kubernetes ended Pod {handle.ref} ({pod.status.reason}: "
                    f"{pod.status.message or ''}); the agent was stopped with it",
                    reason="LOST",
                )
            if ended is not None:
                await self._collect(handle)
                return ExitInfo(ended.exit_code, ended.reason == "OOMKilled")
            if pod.status.phase in ("Failed", "Succeeded"):
                raise BackendError(f"Pod {handle.ref} ended without the agent", reason="LOST")
            await asyncio.sleep(self._k8s.poll_interval_s)

    async def usage(self, handle: Handle) -> Usage:
        # Needs the metrics API, which a cluster may not serve: not measured (docs/deploy.md).
        return Usage()

    async def writable_layer_bytes(self, handle: Handle) -> int | None:
        return None

    async def node_egress(self, handle: Handle) -> EgressSums | None:
        # No egress proxy runs in a Pod (allowlist mode is refused at admission).
        return None

    # Ending

    async def stop(self, handle: Handle, grace_s: float) -> None:
        """The agent gets SIGTERM, then SIGKILL after grace_s, from inside its Pod; its
        outputs are then collected. A Pod whose agent never started is deleted."""
        try:
            pod = await self._read_pod(handle)
        except BackendError:
            return
        agent = _status(pod, pods.AGENT)
        if agent is None or not (agent.state.running or agent.state.terminated):
            await self._delete(handle.ref)
            return
        if agent.state.running:
            try:
                await asyncio.wait_for(
                    self._exec(handle.ref, ["stop", f"{grace_s:g}"]), grace_s + STOP_MARGIN_S
                )
            except (BackendError, TimeoutError) as exc:
                log.warning("k8s_stop_exec_failed", sandbox_id=handle.sandbox_id, error=str(exc))
                await self._delete(handle.ref, grace_s)
                return
        give_up = asyncio.get_running_loop().time() + STOP_MARGIN_S
        while asyncio.get_running_loop().time() < give_up:
            agent = _status(await self._read_pod(handle), pods.AGENT)
            if agent is not None and agent.state.terminated:
                await self._collect(handle)
                return
            await asyncio.sleep(min(0.25, self._k8s.poll_interval_s))
        await self._delete(handle.ref, 0)

    async def remove(self, handle: Handle) -> None:
        await self._delete(handle.ref)
        self._collected.discard(handle.sandbox_id)

    async def _delete(self, name: str, grace_s: float = 0) -> None:
        """Deletes the Pod and its Secret; what is already gone is fine."""
        from kubernetes import client

        options = client.V1DeleteOptions(
            grace_period_seconds=math.ceil(grace_s), propagation_policy="Background"
        )
        for delete in (self._core.delete_namespaced_pod, self._core.delete_namespaced_secret):
            try:
                await self._call(
                    "delete the sandbox's Pod", delete, name, self._pod.namespace, body=options
                )
            except Gone:
                continue

    # Outputs

    async def _collect(self, handle: Handle) -> None:
        """The agent's outputs, through the exec API, into the sandbox's folder. Once per
        sandbox; a failure is logged and leaves the folder as it was (no submission)."""
        if handle.sandbox_id in self._collected:
            return
        root = self._sandboxes_dir / handle.sandbox_id
        with tempfile.NamedTemporaryFile(dir=self._scratch_dir, suffix=".tar") as archive:
            try:
                await self._exec(
                    handle.ref, ["collect"], sink=archive, max_bytes=self._max_artifacts_bytes
                )
                archive.flush()
                await asyncio.to_thread(extract_artifacts, Path(archive.name), root)
            except (BackendError, UnsafeArchive, OSError) as exc:
                log.warning("k8s_collect_failed", sandbox_id=handle.sandbox_id, error=str(exc))
                return
        self._collected.add(handle.sandbox_id)

    async def _exec(
        self, name: str, args: list[str], *, sink: Any = None, max_bytes: int = 0
    ) -> None:
        await asyncio.to_thread(self._exec_blocking, name, args, sink, max_bytes)

    def _exec_blocking(self, name: str, args: list[str], sink: Any, max_bytes: int) -> None:
        """Runs the node program in the Pod's endpoints container; its stdout into `sink`."""
        from kubernetes import client

        # stream() swaps the client's request method while it runs: never on the shared one.
        api_client = client.ApiClient(self._api_client.configuration)
        try:
            self._exec_on(client.CoreV1Api(api_client), name, args, sink, max_bytes)
        finally:
            api_client.close()

    def _exec_on(self, api: Any, name: str, args: list[str], sink: Any, max_bytes: int) -> None:
        from kubernetes.stream import stream

        try:
            response = stream(
                api.connect_get_namespaced_pod_exec,
                name,
                self._pod.namespace,
                container=pods.ENDPOINTS,
                command=[*pods.NODE_COMMAND, *args],
                stdout=True,
                stderr=True,
                stdin=False,
                tty=False,
                binary=True,
                _preload_content=False,
            )
        except Exception as exc:
            raise _api_error("run a command in the sandbox's Pod", exc) from exc
        written = 0
        errors = b""
        try:
            while response.is_open():
                response.update(timeout=1)
                if response.peek_stdout():
                    data = response.read_stdout()
                    written += len(data)
                    if max_bytes and written > max_bytes:
                        raise BackendError(f"the agent's outputs are over {max_bytes} bytes")
                    if sink is not None:
                        sink.write(data)
                if response.peek_stderr():
                    errors = (errors + response.read_stderr())[-2000:]
            code = response.returncode
        finally:
            response.close()
        if code != 0:
            detail = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise BackendError(f"{args[0]} in the sandbox's Pod failed ({code}): {detail[0]}")

    # Reconcile

    async def list_owned(self, instance_labels: dict[str, str]) -> list[tuple[Handle, bool]]:
        """This instance's Pods, by label (the instance is the one its settings name, as
        instance_labels do); a Secret whose Pod was never made is deleted."""
        selector = pods.instance_selector(self._pod)
        found = await self._call(
            "list the sandboxes' Pods",
            self._core.list_namespaced_pod,
            self._pod.namespace,
            label_selector=selector,
        )
        owned = []
        names = set()
        for pod in found.items:
            sandbox_id = (pod.metadata.labels or {}).get(pods.SANDBOX_LABEL, "")
            if pod.metadata.name != pods.pod_name(sandbox_id):
                continue
            names.add(pod.metadata.name)
            agent = _status(pod, pods.AGENT)
            running = pod.status.phase in ("Pending", "Running") and not (
                agent and agent.state.terminated
            )
            owned.append((Handle(sandbox_id, pod.metadata.name), running))
        secrets = await self._call(
            "list the sandboxes' Secrets",
            self._core.list_namespaced_secret,
            self._pod.namespace,
            label_selector=selector,
        )
        for secret in secrets.items:
            if secret.metadata.name not in names:
                await self._delete(secret.metadata.name)
        return owned


def _pod_files(spec: LaunchSpec) -> dict[str, bytes]:
    layout = spec.layout
    sources = {
        pod_sidecar.DESCRIPTION: layout.description_file,
        layout.instructions_file.name: layout.instructions_file,
        layout.validate_script.name: layout.validate_script,
    }
    return {name: path.read_bytes() for name, path in sources.items()}


def _read_line(response: Any) -> bytes:
    """The stream's next line; b"" once it ended, or broke (the caller opens it again)."""
    from urllib3.exceptions import HTTPError

    try:
        return bytes(response.readline())
    except (HTTPError, OSError, ValueError):  # ValueError: shut down while reading
        return b""


def _status(pod: Any, container: str) -> Any:
    for status in pod.status.container_statuses or []:
        if status.name == container:
            return status
    return None


def _raise_if_stuck(pod: Any) -> None:
    """A BackendError for a Pod that will never run its agent."""
    for status in pod.status.init_container_statuses or []:
        ended = status.state.terminated if status.state else None
        if ended is not None and ended.exit_code != 0:
            raise BackendError(
                f"the Pod's public data could not be staged ({ended.reason}, exit code "
                f"{ended.exit_code}): {(ended.message or '').strip()[:500]}",
                reason="RUNTIME_ERROR",
            )
    for status in [
        *(pod.status.init_container_statuses or []),
        *(pod.status.container_statuses or []),
    ]:
        waiting = status.state.waiting if status.state else None
        if waiting is None:
            continue
        if waiting.reason in _IMAGE_REASONS:
            raise BackendError(
                f"image {status.image!r} of container {status.name} cannot be had: "
                f"{waiting.reason}",
                reason="IMAGE_NOT_FOUND",
            )
        if waiting.reason in _CONFIG_REASONS:
            raise BackendError(
                f"container {status.name} cannot start: {waiting.message or waiting.reason}"
            )


def _parse_log_line(raw: bytes) -> OutputLine | None:
    """`<RFC 3339 time with nanoseconds> <text>` as the log API sends it with timestamps."""
    stamp, _, text = raw.decode("utf-8", errors="replace").partition(" ")
    try:
        # Python reads microseconds: the nanoseconds' last three digits go.
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        at = datetime.fromisoformat(f"{whole}.{(fraction + '000000')[:6]}+00:00")
    except ValueError:
        return None
    return OutputLine(OutputStream.STDOUT, text.rstrip("\n"), at.timestamp())


def _build(settings: SandboxSettings) -> KubernetesBackend:
    if importlib.util.find_spec("kubernetes") is None:
        raise FailedPreconditionError(
            "MLEB_SANDBOX_BACKEND=kubernetes needs the official client: install "
            "mleb-server[kubernetes]",
            reason="BACKEND_NOT_INSTALLED",
        )
    return KubernetesBackend(settings, KubernetesSettings.from_env())


PROVIDER = BackendProvider(KubernetesBackend.name, CAPABILITIES, _build)
