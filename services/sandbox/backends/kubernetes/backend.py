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
import functools
import importlib.util
import math
import os
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from mleb.lab.artifact_extraction import UnsafeArchive

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
    Usage,
)
from services.sandbox.backends.kubernetes import pod as pods
from services.sandbox.backends.kubernetes.outputs import unpack_outputs
from services.sandbox.backends.kubernetes.pod_board import PodBoard
from services.sandbox.backends.kubernetes.pod_exec import ExecFailed, OutputTooLarge, run_in_pod
from services.sandbox.backends.kubernetes.pod_logs import LogLines, parse_log_line
from services.sandbox.backends.kubernetes.pod_view import PodView, Terminated, read_json
from services.sandbox.config import SandboxSettings, seconds_setting
from services.sandbox.node.public_fetch import DESCRIPTION

if TYPE_CHECKING:
    from services.sandbox.node.egress_proxy import EgressSums
    from services.sandbox.records import SandboxRequest

log = structlog.get_logger("mleb.sandbox")

T = TypeVar("T")
# How long a stop's exec may take beyond the grace period before the Pod is deleted.
STOP_MARGIN_S = 15.0
# How long reads keep being tried while the API fails, before the sandbox fails.
API_PATIENCE_S = 120.0
# Each API call's connect and read deadlines.
_API_TIMEOUT = (10.0, 60.0)
# How long a Pod of an earlier start may take to go before a new one is made.
DELETE_WAIT_S = 120.0
COLLECT_ATTEMPTS = 3
COLLECT_DEADLINE_S = 1800.0
# The exit code recorded for an agent whose Pod a stop had to delete (as SIGKILL's).
KILLED_EXIT_CODE = 137
# How long a Pod a stop deleted may stay terminating (its node away) before the stop is
# taken as done.
STOPPED_POD_WAIT_S = 120.0
# The log API's sinceSeconds must be at least 1.
_MIN_SINCE_S = 1
# Waiting reasons that never clear on their own.
# (ErrImagePull is not: the kubelet tries again, and says ImagePullBackOff once it gives up.)
_IMAGE_REASONS = frozenset({"ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"})
_CONFIG_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
# Pod-level reasons for which Kubernetes itself ended the agent: not the agent's failure.
_LOST_REASONS = frozenset({"DeadlineExceeded", "Evicted", "Preempting", "NodeLost", "Shutdown"})
_LOG_THREADS = 1024
_EXEC_THREADS = 64
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
        poll_s = seconds_setting("MLEB_K8S_POLL_INTERVAL_S", cls.poll_interval_s, positive=True)
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
        self._max_output_entries = settings.max_output_entries
        # Log streams each hold a thread while their agent runs; execs hold one at most
        # their deadline. Neither may starve the other, nor the default pool's API calls.
        self._log_threads = ThreadPoolExecutor(_LOG_THREADS, thread_name_prefix="mleb-k8s-logs")
        self._exec_threads = ThreadPoolExecutor(_EXEC_THREADS, thread_name_prefix="mleb-k8s-exec")
        self._board = PodBoard(self._list_pods, k8s.poll_interval_s)
        self._collections: dict[str, asyncio.Future[None]] = {}
        # Sandboxes whose Pod a stop deleted, and when: their Pod's end is that stop, not a
        # loss. (Kept in memory: after a restart, such a Pod's end reads as a loss.)
        self._deleted_by_stop: dict[str, float] = {}

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One API call on a thread, with a deadline; any failure is a BackendError (Gone
        for a 404)."""
        try:
            return await asyncio.to_thread(fn, *args, _request_timeout=_API_TIMEOUT, **kwargs)
        except Exception as exc:
            raise _api_error(what, exc) from exc

    async def _call_json(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A call whose answer is read as JSON, not into the client's models (pod_view)."""
        response = await self._call(what, fn, *args, _preload_content=False, **kwargs)
        try:
            return await asyncio.to_thread(read_json, response)
        except Exception as exc:  # the body broke off, timed out, or is not JSON
            raise _api_error(what, exc) from exc

    async def _patiently(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """A read retried with backoff while the API fails for a while (throttling, a
        restarting control plane): only a 404, or failing past API_PATIENCE_S, ends it."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + API_PATIENCE_S
        pause = self._k8s.poll_interval_s
        while True:
            try:
                return await fn()
            except Gone:
                raise
            except BackendError as exc:
                if loop.time() >= give_up:
                    raise
                log.warning("k8s_api_retry", what=what, error=str(exc))
                await asyncio.sleep(pause)
                pause = min(pause * 2, 15.0)

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
        # A start retried after a crash finds what the last try left: start afresh, once
        # it is gone (a Pod being deleted keeps its name until its containers stopped).
        await self._delete(name)
        await self._until_gone(name)
        secret = pods.secret_manifest(spec, self._pod, files)
        await self._call_json(
            "create the sandbox's Secret",
            self._core.create_namespaced_secret,
            self._pod.namespace,
            secret,
        )
        manifest = pods.pod_manifest(spec, self._pod)
        try:
            pod = PodView.from_json(
                await self._call_json(
                    "create the sandbox's Pod",
                    self._core.create_namespaced_pod,
                    self._pod.namespace,
                    manifest,
                )
            )
        except BaseException:
            await self._delete(name)
            raise
        # The Secret goes with the Pod, whoever deletes it (Kubernetes' garbage collector).
        owner = {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod.uid}
        try:
            await self._call_json(
                "tie the Secret to the Pod",
                self._core.patch_namespaced_secret,
                name,
                self._pod.namespace,
                {"metadata": {"ownerReferences": [owner]}},
            )
        except BackendError as exc:  # remove() still deletes it
            log.warning("k8s_secret_owner_failed", sandbox_id=spec.sandbox_id, error=str(exc))
        return Handle(spec.sandbox_id, name)

    async def _read_pod(self, handle: Handle) -> PodView:
        """The Pod, from the board (one list a poll for every sandbox), read directly when
        the list lacks it; a BackendError (LOST) once it is gone."""

        async def read() -> PodView:
            found = await self._board.pod(handle.ref)
            return found if found is not None else await self._get_pod(handle.ref)

        try:
            return await self._patiently("read the sandbox's Pod", read)
        except Gone as exc:
            raise BackendError(
                f"Pod {handle.ref} is gone: deleted, or lost with its node", reason="LOST"
            ) from exc

    async def _get_pod(self, name: str) -> PodView:
        """The Pod read directly from the API; Gone when there is none."""
        found = await self._call_json(
            "read the sandbox's Pod", self._core.read_namespaced_pod, name, self._pod.namespace
        )
        return PodView.from_json(found)

    async def _list_pods(self) -> list[PodView]:
        found = await self._call_json(
            "list the sandboxes' Pods",
            self._core.list_namespaced_pod,
            self._pod.namespace,
            label_selector=pods.instance_selector(self._pod),
        )
        return [PodView.from_json(item) for item in found.get("items") or []]

    async def _until_gone(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + DELETE_WAIT_S
        while loop.time() < give_up:
            try:
                await self._get_pod(name)
            except Gone:
                return
            await asyncio.sleep(self._k8s.poll_interval_s)
        raise BackendError(f"Pod {name} of an earlier start is still being deleted")

    async def started(self, handle: Handle) -> Handle:
        while True:
            pod = await self._read_pod(handle)
            _raise_if_stuck(pod)
            agent = pod.container(pods.AGENT)
            if agent is not None and (agent.running or agent.terminated):
                return Handle(
                    handle.sandbox_id,
                    handle.ref,
                    agent.image_id,
                    placement=f"Pod {handle.ref} on node {pod.node_name}",
                    started_at=agent.started_at or 0.0,
                )
            if pod.ended:
                raise BackendError(
                    f"Pod {handle.ref} ended ({pod.reason or pod.phase}) before the agent started",
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
            if response is None:  # the agent has not started
                if _agent_ended_or_never_will(await self._read_pod(handle)):
                    return
                await asyncio.sleep(self._k8s.poll_interval_s)
                continue
            lines = LogLines(response)
            # A resumed stream starts again before the last line: skip what was read.
            resume_after = since
            try:
                while (
                    piece := await loop.run_in_executor(self._log_threads, lines.next_line)
                ).data:
                    line = parse_log_line(piece, since)
                    if line is not None and line.time > resume_after:
                        since = line.time
                        yield line
            finally:
                lines.close()  # wakes a read still waiting on its thread
            # The stream ends with the container, or with the connection: then resume.
            if _agent_ended_or_never_will(await self._read_pod(handle)):
                return

    def _open_log(self, name: str, since: float) -> Any:
        # Resuming: from a minute before the last line read (the node's clock may differ
        # from this host's), the lines already read skipped by time.
        seconds = max(_MIN_SINCE_S, math.ceil(time.time() - since) + 60)
        resume = {"since_seconds": seconds} if since else {}
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
            error = _api_error("read the agent's log", exc)
            if isinstance(error, Gone):
                raise BackendError(f"Pod {name} is gone", reason="LOST") from exc
            raise error from exc

    async def wait(self, handle: Handle) -> ExitInfo:
        while True:
            stopped_at = self._deleted_by_stop.get(handle.sandbox_id)
            try:
                pod = await self._read_pod(handle)
            except BackendError:
                if stopped_at is not None:
                    return ExitInfo(KILLED_EXIT_CODE)  # the stop's deletion, not a loss
                raise
            agent = pod.container(pods.AGENT)
            ended = agent.terminated if agent is not None else None
            if stopped_at is not None:
                # Its Pod was deleted by the service's stop: that stop is how it ended,
                # even while a node that is away keeps the Pod terminating.
                if ended is not None:
                    return _exit_info(ended)
                if asyncio.get_running_loop().time() - stopped_at > STOPPED_POD_WAIT_S:
                    return ExitInfo(KILLED_EXIT_CODE)
            elif pod.reason in _LOST_REASONS or pod.deleting:
                # Kubernetes (a deadline, an eviction, a drain) or someone else ended it:
                # the agent's exit then says nothing of the agent.
                raise BackendError(
                    f"Kubernetes ended Pod {handle.ref} ({pod.reason or 'deleted'}"
                    f"{': ' + pod.message if pod.message else ''}); the agent was stopped with it",
                    reason="LOST",
                )
            elif ended is not None:
                await self._collect(handle, pod)
                return _exit_info(ended)
            elif pod.ended:
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
        outputs are then collected. A Pod whose agent never started, or whose stop does
        not come through, is deleted, and its end counts as this stop."""
        pod = await self._read_pod(handle)
        agent = pod.container(pods.AGENT)
        if agent is None or not (agent.running or agent.terminated):
            await self._delete_for_stop(handle, grace_s)
            return
        if agent.running:
            try:
                await self._exec(
                    handle.ref, ["stop", f"{grace_s:g}"], deadline_s=grace_s + STOP_MARGIN_S
                )
            except BackendError as exc:
                log.warning("k8s_stop_exec_failed", sandbox_id=handle.sandbox_id, error=str(exc))
                await self._delete_for_stop(handle, grace_s)
                return
        give_up = asyncio.get_running_loop().time() + STOP_MARGIN_S
        while asyncio.get_running_loop().time() < give_up:
            pod = await self._read_pod(handle)
            agent = pod.container(pods.AGENT)
            if agent is not None and agent.terminated:
                await self._collect(handle, pod)
                return
            await asyncio.sleep(min(0.25, self._k8s.poll_interval_s))
        await self._delete_for_stop(handle, 1.0)

    async def _delete_for_stop(self, handle: Handle, grace_s: float) -> None:
        self._deleted_by_stop[handle.sandbox_id] = asyncio.get_running_loop().time()
        await self._delete(handle.ref, grace_s)

    async def remove(self, handle: Handle) -> None:
        await self._delete(handle.ref)
        self._collections.pop(handle.sandbox_id, None)
        self._deleted_by_stop.pop(handle.sandbox_id, None)

    async def _delete(self, name: str, grace_s: float = 1.0) -> None:
        """Deletes the Pod and its Secret; what is already gone is fine. Never a grace of 0,
        which removes the Pod from the API before its containers are stopped."""
        from kubernetes import client

        options = client.V1DeleteOptions(
            grace_period_seconds=max(1, math.ceil(grace_s)), propagation_policy="Background"
        )
        for what, delete in (
            ("delete the sandbox's Pod", self._core.delete_namespaced_pod),
            ("delete the sandbox's Secret", self._core.delete_namespaced_secret),
        ):
            try:
                await self._call_json(what, delete, name, self._pod.namespace, body=options)
            except Gone:
                continue

    # Outputs

    async def _collect(self, handle: Handle, pod: PodView) -> None:
        """The agent's outputs into the sandbox's folder, once per sandbox: a stop and a wait
        that both see the agent end share one collection."""
        task = self._collections.get(handle.sandbox_id)
        if task is None:
            task = asyncio.ensure_future(self._collect_once(handle, pod))
            self._collections[handle.sandbox_id] = task
        await asyncio.shield(task)

    async def _collect_once(self, handle: Handle, pod: PodView) -> None:
        """Through the exec API; a transport failure is tried again. Outputs the agent made
        uncollectable (it killed its Pod's endpoints container, or left too many files or
        bytes) are its own loss, logged; an infrastructure failure is a BackendError."""
        root = self._sandboxes_dir / handle.sandbox_id
        most = self._max_output_entries
        for attempt in range(COLLECT_ATTEMPTS):
            if not _running(pod, pods.ENDPOINTS):
                log.warning("k8s_collect_no_endpoints", sandbox_id=handle.sandbox_id)
                return
            try:
                await self._collect_into(handle, root, most)
                return
            except (ExecFailed, OutputTooLarge, UnsafeArchive, tarfile.TarError) as exc:
                log.warning("k8s_collect_refused", sandbox_id=handle.sandbox_id, error=str(exc))
                return
            except (BackendError, OSError) as exc:
                if attempt + 1 == COLLECT_ATTEMPTS:
                    raise BackendError(
                        f"the agent's outputs could not be collected: {exc}"
                    ) from exc
                log.warning("k8s_collect_retry", sandbox_id=handle.sandbox_id, error=str(exc))
                await asyncio.sleep(self._k8s.poll_interval_s)
                pod = await self._read_pod(handle)

    async def _collect_into(self, handle: Handle, root: Path, most: int) -> None:
        archive = await asyncio.to_thread(
            tempfile.NamedTemporaryFile, dir=self._scratch_dir, suffix=".tar"
        )
        try:
            await self._exec(
                handle.ref,
                ["collect", str(most)],
                deadline_s=COLLECT_DEADLINE_S,
                sink=archive,
                max_bytes=self._max_artifacts_bytes,
            )
            await asyncio.to_thread(archive.flush)
            await asyncio.to_thread(unpack_outputs, Path(archive.name), root, most)
        finally:
            await asyncio.to_thread(archive.close)

    async def _exec(
        self, name: str, args: list[str], *, deadline_s: float, sink: Any = None, max_bytes: int = 0
    ) -> None:
        """Runs the in-Pod program in the endpoints container, on a thread of the backend's
        own; the program's deadline ends it (and its thread) in any case."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._exec_threads,
            functools.partial(
                run_in_pod,
                self._api_client.configuration,
                self._pod.namespace,
                name,
                pods.ENDPOINTS,
                [*pods.NODE_COMMAND, *args],
                deadline_s=deadline_s,
                sink=sink,
                max_bytes=max_bytes,
            ),
        )

    # Reconcile

    async def list_owned(self, instance_labels: dict[str, str]) -> list[tuple[Handle, bool]]:
        """This instance's Pods, by label (the instance is the one its settings name, as
        instance_labels do); a Secret whose Pod was never made is deleted."""
        owned = []
        names = set()
        for pod in await self._list_pods():
            sandbox_id = pod.labels.get(pods.SANDBOX_LABEL, "")
            if pod.name != pods.pod_name(sandbox_id):
                continue
            names.add(pod.name)
            owned.append((Handle(sandbox_id, pod.name), not _agent_ended_or_never_will(pod)))
        secrets = await self._call_json(
            "list the sandboxes' Secrets",
            self._core.list_namespaced_secret,
            self._pod.namespace,
            label_selector=pods.instance_selector(self._pod),
        )
        for secret in secrets.get("items") or []:
            name = str((secret.get("metadata") or {}).get("name", ""))
            if name.startswith(pods.POD_PREFIX) and name not in names:
                await self._delete(name)
        return owned


def _pod_files(spec: LaunchSpec) -> dict[str, bytes]:
    layout = spec.layout
    sources = {
        DESCRIPTION: layout.description_file,
        layout.instructions_file.name: layout.instructions_file,
        layout.validate_script.name: layout.validate_script,
    }
    return {name: path.read_bytes() for name, path in sources.items()}


def _running(pod: PodView, container: str) -> bool:
    status = pod.container(container)
    return status is not None and status.running


def _exit_info(ended: Terminated) -> ExitInfo:
    return ExitInfo(ended.exit_code, ended.reason == "OOMKilled")


def _agent_ended_or_never_will(pod: PodView) -> bool:
    agent = pod.container(pods.AGENT)
    return (agent is not None and agent.terminated is not None) or pod.ended


def _raise_if_stuck(pod: PodView) -> None:
    """A BackendError for a Pod that will never run its agent."""
    for status in pod.init_containers:
        ended = status.terminated
        if ended is not None and ended.exit_code != 0:
            raise BackendError(
                f"the Pod's public data could not be staged ({ended.reason}, exit code "
                f"{ended.exit_code}): {ended.message.strip()[:500]}",
                reason="RUNTIME_ERROR",
            )
    for status in (*pod.init_containers, *pod.containers):
        if status.waiting_reason in _IMAGE_REASONS:
            raise BackendError(
                f"image {status.image!r} of container {status.name} cannot be had: "
                f"{status.waiting_reason}",
                reason="IMAGE_NOT_FOUND",
            )
        if status.waiting_reason in _CONFIG_REASONS:
            raise BackendError(
                f"container {status.name} cannot start: "
                f"{status.waiting_message or status.waiting_reason}"
            )


def _build(settings: SandboxSettings) -> KubernetesBackend:
    if importlib.util.find_spec("kubernetes") is None:
        raise FailedPreconditionError(
            "MLEB_SANDBOX_BACKEND=kubernetes needs the official client: install "
            "mleb-server[kubernetes]",
            reason="BACKEND_NOT_INSTALLED",
        )
    return KubernetesBackend(settings, KubernetesSettings.from_env())


PROVIDER = BackendProvider(KubernetesBackend.name, CAPABILITIES, _build)
