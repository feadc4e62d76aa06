"""The Kubernetes backend's Pod and Secret, and the in-Pod collector, without a cluster
(tests/integration/cluster/test_kubernetes_backend.py runs them on one)."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from services.sandbox.backends.base import LaunchSpec, NetworkMode
from services.sandbox.backends.kubernetes import pod as pods
from services.sandbox.node import pod_sidecar
from services.sandbox.node.layout import host_layout

SETTINGS = pods.PodSettings(
    namespace="mleb",
    node_image="mleb-server",
    image_pull_policy="Never",
    agent_uid=1000,
    registry_addr="registry:50051",
    grader_addr="grader:50052",
    instance="node-a.inst-1",
)


def spec(tmp_path: Path, **fields) -> LaunchSpec:
    values = {
        "sandbox_id": "sbx-0123456789abcdef0123",
        "competition_id": "spaceship-titanic",
        "image": "agent:1",
        "command": ["python3", "run.py"],
        "env": {"MLEB_SANDBOX_TOKEN": "tok-secret", "HIDDEN": "s3cr3t"},
        "cpus": 1.5,
        "memory_bytes": 2 << 30,
        "shm_bytes": 1 << 26,
        "pids_limit": 512,
        "gpu_uuids": [],
        "network": NetworkMode.NONE,
        "allowed_hosts": [],
        "layout": host_layout(tmp_path),
        "mlebench_compat": False,
        "time_limit_s": 3600.0,
        "gpu_count": 2,
        "listing_digest": "abc",
        "stop_grace_s": 10.0,
    }
    return LaunchSpec(**{**values, **fields})


def test_no_secret_reaches_the_pod_spec_and_each_comes_from_the_secret(tmp_path):
    launch = spec(tmp_path)
    manifest = pods.pod_manifest(launch, SETTINGS)
    assert "s3cr3t" not in json.dumps(manifest) and "tok-secret" not in json.dumps(manifest)
    agent = next(c for c in manifest["spec"]["containers"] if c["name"] == pods.AGENT)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in agent["env"]}
    assert refs["HIDDEN"] == {"name": "mleb-sbx-0123456789abcdef0123", "key": "env.HIDDEN"}
    secret = pods.secret_manifest(launch, SETTINGS, {"description.md": b"# d"})
    assert base64.b64decode(secret["data"]["env.HIDDEN"]) == b"s3cr3t"
    assert base64.b64decode(secret["data"]["file.description.md"]) == b"# d"


def test_the_pod_runs_nothing_as_root_and_asks_the_scheduler_for_its_gpus(tmp_path):
    manifest = pods.pod_manifest(spec(tmp_path), SETTINGS)
    pod_spec = manifest["spec"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["runAsUser"] == 1000
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["activeDeadlineSeconds"] == 3600 + 10 + pods.DEADLINE_MARGIN_S
    for container in [*pod_spec["containers"], *pod_spec["initContainers"]]:
        context = container["securityContext"]
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["allowPrivilegeEscalation"] is False
    agent = pod_spec["containers"][-1]
    assert agent["name"] == pods.AGENT  # after the endpoints, whose hook holds it back
    assert agent["resources"]["limits"] == {
        "cpu": "1500m",
        "memory": str(2 << 30),
        "nvidia.com/gpu": "2",
    }
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    assert mounts["/home/data"]["readOnly"] is True
    assert manifest["metadata"]["labels"][pods.INSTANCE_LABEL] == "node-a.inst-1"


def test_the_pod_deadline_backs_up_the_services_own_limit(tmp_path):
    manifest = pods.pod_manifest(spec(tmp_path, time_limit_s=0.5, stop_grace_s=1.0), SETTINGS)
    assert manifest["spec"]["activeDeadlineSeconds"] == 2 + pods.DEADLINE_MARGIN_S


@pytest.fixture
def outputs(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "outputs"
    for name in pod_sidecar.OUTPUT_FOLDERS:
        (root / name).mkdir(parents=True)
    monkeypatch.setattr(pod_sidecar, "OUTPUTS_DIR", root)
    return root


def _collected(tmp_path, most: int = 1000) -> dict[str, bytes | None]:
    out = io.BytesIO()
    assert pod_sidecar._collect(out, most) == 0
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return {
            m.name: (tar.extractfile(m).read() if m.isreg() else None)  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def test_collect_takes_plain_files_and_folders_and_no_link_at_any_level(tmp_path, outputs):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "answers.csv").write_text("the answers\n")
    (outputs / "submission" / "submission.csv").write_text("id,y\n1,0\n")
    (outputs / "submission" / "deep").mkdir()
    (outputs / "submission" / "deep" / "f.txt").write_text("f")
    # Links to a file, to a folder, as a folder on the way, and a fifo.
    (outputs / "submission" / "answers.csv").symlink_to(secret / "answers.csv")
    (outputs / "logs" / "dir").symlink_to(secret)
    (outputs / "code" / "hard").mkdir()
    os.mkfifo(outputs / "code" / "pipe")
    found = _collected(tmp_path)
    assert found == {
        "submission": None,
        "submission/deep": None,
        "submission/deep/f.txt": b"f",
        "submission/submission.csv": b"id,y\n1,0\n",
        "logs": None,
        "code": None,
        "code/hard": None,
    }


def test_collect_follows_no_link_in_place_of_an_output_folder(tmp_path, outputs):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "answers.csv").write_text("the answers\n")
    (outputs / "logs").rmdir()
    (outputs / "logs").symlink_to(secret)
    found = _collected(tmp_path)
    assert not any(name.startswith("logs") for name in found)


def test_collect_writes_a_file_that_shrank_as_its_stated_size(tmp_path, outputs, monkeypatch):
    target = outputs / "submission" / "submission.csv"
    target.write_bytes(b"x" * 10)

    real_fstat = os.fstat

    def grown(fd):  # the stat says 20 bytes; only 10 are there to read
        result = real_fstat(fd)
        if result.st_size == 10:
            return os.stat_result((result[0], *result[1:6], 20, *result[7:]))
        return result

    monkeypatch.setattr(pod_sidecar.os, "fstat", grown)
    found = _collected(tmp_path)
    assert found["submission/submission.csv"] == b"x" * 10 + b"\0" * 10


def test_collect_refuses_more_entries_than_the_service_takes(outputs):
    for n in range(5):
        (outputs / "logs" / f"f{n}").write_text("x")
    assert pod_sidecar._collect(io.BytesIO(), 4) == 3
    assert pod_sidecar._collect(io.BytesIO(), 10) == 0


@pytest.mark.parametrize("uid", ["0", "00", "000", "-0", "+0", "root", " 0", ""])
def test_the_agent_uid_is_never_root_however_it_is_spelt(monkeypatch, uid):
    from services.common.errors import InvalidArgumentError
    from services.sandbox.backends.kubernetes.backend import KubernetesSettings

    monkeypatch.setenv("MLEB_K8S_AGENT_UID", uid)
    with pytest.raises(InvalidArgumentError, match="MLEB_K8S_AGENT_UID"):
        KubernetesSettings.from_env()


@pytest.mark.parametrize("interval", ["0", "-1", "nan", "inf", "soon"])
def test_the_poll_interval_must_be_a_positive_number_of_seconds(monkeypatch, interval):
    from services.common.errors import InvalidArgumentError
    from services.sandbox.backends.kubernetes.backend import KubernetesSettings

    monkeypatch.setenv("MLEB_K8S_POLL_INTERVAL_S", interval)
    with pytest.raises(InvalidArgumentError, match="MLEB_K8S_POLL_INTERVAL_S"):
        KubernetesSettings.from_env()
