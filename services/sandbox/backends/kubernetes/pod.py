"""The Pod and Secret one sandbox runs as, as plain manifests (core/v1 only, stable since
Kubernetes 1.0 save seccompProfile, stable since 1.19).

- init container `stage` (node image): public data into the `data` volume;
- container `endpoints` (node image): the validation and grader endpoints on the Pod's
  loopback; its postStart hook holds the agent back until they listen;
- container `agent`: the lab's image, not root, every capability dropped, its GPUs as
  `nvidia.com/gpu` for the scheduler and the device plugin to place.

Everything secret (the agent's environment, the sandbox token) is in the sandbox's Secret,
never in the Pod spec, which more people may read.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from typing import Any

from services.sandbox.backends.base import (
    CODE_DIR,
    DATA_DIR,
    INSTRUCTIONS_FILE,
    LOGS_DIR,
    SUBMISSION_DIR,
    VALIDATE_SCRIPT,
    LaunchSpec,
)
from services.sandbox.node import pod_sidecar
from services.sandbox.node.public_fetch import DESCRIPTION

MANAGED_BY = ("app.kubernetes.io/managed-by", "mleb-sandbox")
SANDBOX_LABEL = "mleb.dev/sandbox"
INSTANCE_LABEL = "mleb.dev/instance"
NETWORK_LABEL = "mleb.dev/network"
AGENT = "agent"
ENDPOINTS = "endpoints"
STAGE = "stage"
POD_PREFIX = "mleb-"
# The Pod's own deadline beyond the sandbox's limit: the service stops it first. It counts
# from the Pod's start, image pulls and staging included, so it is generous.
DEADLINE_MARGIN_S = 1800
# A label value, and a Secret key (env.<NAME>): what Kubernetes accepts for each.
LABEL_VALUE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,250}")
NODE_COMMAND = ["python3", "-m", pod_sidecar.__name__]
_SIDECAR_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "96Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}


@dataclass(frozen=True)
class PodSettings:
    namespace: str
    node_image: str
    image_pull_policy: str
    agent_uid: int
    registry_addr: str
    grader_addr: str
    instance: str


def pod_name(sandbox_id: str) -> str:
    return f"{POD_PREFIX}{sandbox_id}"


def instance_selector(settings: PodSettings) -> str:
    return f"{MANAGED_BY[0]}={MANAGED_BY[1]},{INSTANCE_LABEL}={settings.instance}"


def secret_manifest(
    spec: LaunchSpec, settings: PodSettings, files: dict[str, bytes]
) -> dict[str, Any]:
    """The agent's environment (env.NAME) and the files the Pod mounts (file.NAME)."""
    data = {f"env.{name}": value.encode() for name, value in spec.env.items()}
    data |= {f"file.{name}": body for name, body in files.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": pod_name(spec.sandbox_id),
            "namespace": settings.namespace,
            "labels": _labels(spec, settings),
        },
        "type": "Opaque",
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def pod_manifest(spec: LaunchSpec, settings: PodSettings) -> dict[str, Any]:
    name = pod_name(spec.sandbox_id)
    grace_s = spec.stop_grace_s
    token = _secret_env("MLEB_SANDBOX_TOKEN", name)
    node_env = [
        {"name": "MLEB_SANDBOX_ID", "value": spec.sandbox_id},
        {"name": "MLEB_COMPETITION_ID", "value": spec.competition_id},
        {"name": "MLEB_LISTING_DIGEST", "value": spec.listing_digest},
        {"name": "MLEB_REGISTRY_ADDR", "value": settings.registry_addr},
        {"name": "MLEB_GRADER_ADDR", "value": settings.grader_addr},
        token,
    ]
    outputs = [
        {"name": "submission", "mountPath": f"{pod_sidecar.OUTPUTS_DIR}/submission"},
        {"name": "logs", "mountPath": f"{pod_sidecar.OUTPUTS_DIR}/logs"},
        {"name": "code", "mountPath": f"{pod_sidecar.OUTPUTS_DIR}/code"},
    ]
    stage = _node_container(
        STAGE,
        "stage",
        node_env,
        settings,
        [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "files", "mountPath": str(pod_sidecar.FILES_DIR), "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    endpoints = _node_container(
        ENDPOINTS,
        "serve",
        node_env,
        settings,
        [
            {"name": "sockets", "mountPath": str(pod_sidecar.RUN_DIR)},
            {"name": "tmp", "mountPath": "/tmp"},
            *({**mount, "readOnly": True} for mount in outputs),
        ],
    )
    endpoints["lifecycle"] = {"postStart": {"exec": {"command": [*NODE_COMMAND, "ready"]}}}
    agent: dict[str, Any] = {
        "name": AGENT,
        "image": spec.image,
        "imagePullPolicy": settings.image_pull_policy,
        "env": [_secret_env(key, name) for key in sorted(spec.env)],
        "resources": _agent_resources(spec),
        "securityContext": _container_security(read_only_root=False),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR, "readOnly": True},
            {"name": "submission", "mountPath": SUBMISSION_DIR},
            {"name": "logs", "mountPath": LOGS_DIR},
            {"name": "code", "mountPath": CODE_DIR},
            _file_mount(INSTRUCTIONS_FILE),
            _file_mount(VALIDATE_SCRIPT),
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }
    if spec.command:
        agent["command"] = list(spec.command)
    uid = settings.agent_uid
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": _labels(spec, settings),
            # The core's labels, kept whole: their values need not be valid label values.
            "annotations": {f"mleb.dev/label.{k}": v for k, v in spec.labels.items()},
        },
        "spec": {
            "restartPolicy": "Never",
            "shareProcessNamespace": True,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": max(1, math.ceil(grace_s)),
            "activeDeadlineSeconds": math.ceil(spec.time_limit_s + grace_s) + DEADLINE_MARGIN_S,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": uid,
                "runAsGroup": uid,
                "fsGroup": uid,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [stage],
            "containers": [endpoints, agent],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "submission", "emptyDir": {}},
                {"name": "logs", "emptyDir": {}},
                {"name": "code", "emptyDir": {}},
                {"name": "sockets", "emptyDir": {}},
                _memory_volume("tmp", spec.tmp_bytes or spec.memory_bytes // 2),
                _memory_volume("shm", spec.shm_bytes),
                {
                    "name": "files",
                    "secret": {
                        "secretName": name,
                        "defaultMode": 0o444,
                        "items": [
                            {"key": f"file.{base}", "path": base, "mode": mode}
                            for base, mode in _FILES.items()
                        ],
                    },
                },
            ],
        },
    }


_FILES = {
    DESCRIPTION: 0o444,
    INSTRUCTIONS_FILE.rsplit("/", 1)[1]: 0o444,
    VALIDATE_SCRIPT.rsplit("/", 1)[1]: 0o555,
}
POD_FILES = tuple(_FILES)


def _labels(spec: LaunchSpec, settings: PodSettings) -> dict[str, str]:
    return {
        MANAGED_BY[0]: MANAGED_BY[1],
        SANDBOX_LABEL: spec.sandbox_id,
        INSTANCE_LABEL: settings.instance,
        NETWORK_LABEL: spec.network.value,
    }


def _node_container(
    name: str, command: str, env: list[dict[str, Any]], settings: PodSettings, mounts: list
) -> dict[str, Any]:
    """A container of the node image running one pod_sidecar command."""
    return {
        "name": name,
        "image": settings.node_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [*NODE_COMMAND, command],
        "env": env,
        "resources": _SIDECAR_RESOURCES,
        "securityContext": _container_security(read_only_root=True),
        "volumeMounts": mounts,
    }


def _secret_env(key: str, secret: str) -> dict[str, Any]:
    return {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": f"env.{key}"}}}


def _file_mount(path: str) -> dict[str, Any]:
    base = path.rsplit("/", 1)[1]
    return {"name": "files", "mountPath": path, "subPath": base, "readOnly": True}


def _memory_volume(name: str, size_bytes: int) -> dict[str, Any]:
    volume: dict[str, Any] = {"medium": "Memory"}
    if size_bytes:
        volume["sizeLimit"] = str(size_bytes)
    return {"name": name, "emptyDir": volume}


def _container_security(*, read_only_root: bool) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
    }


def _agent_resources(spec: LaunchSpec) -> dict[str, Any]:
    # Requests equal to limits: the scheduler places the agent where all it may use is free.
    limits = {"cpu": f"{math.ceil(spec.cpus * 1000)}m", "memory": str(spec.memory_bytes)}
    if spec.gpu_count:
        limits["nvidia.com/gpu"] = str(spec.gpu_count)
    return {"requests": dict(limits), "limits": limits}
