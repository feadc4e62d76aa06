"""The Kubernetes backend on the real one-node Kubernetes 1.20 of dev_kubernetes.sh, its Pods in
the real Docker engine: each sandbox is a Pod whose init container fetches the public data
from the registry and whose sidecar serves validation; outputs and logs come back through the
API alone.

The dev cluster has no network plugin (NetworkPolicy is stored, not enforced) and no GPU
device plugin: `nvidia.com/gpu` is advertised on the node by hand, as Kubernetes documents
for extended resources, so the scheduler's queueing is real and the devices are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.sandbox.backends.kubernetes import pod as pods
from tests.fixtures.dev_clusters import DevCluster
from tests.integration.sandbox.agent_scripts import POST_TO_VALIDATE

pytestmark = pytest.mark.docker
S = sandbox_pb2
BUSYBOX = "mleb-test-busybox"
SUBMIT = "cp /home/data/sample_submission.csv /home/submission/submission.csv"
GPU = "nvidia.com/gpu"
VALIDATE = (
    POST_TO_VALIDATE
    + r"""
import json, os
sample = open("/home/data/sample_submission.csv").read()
valid = json.loads(post(sample))
print("RESULT=" + json.dumps({"valid": valid, "uid": os.getuid(),
      "description": open("/home/data/description.md").read()[:40]}), flush=True)
os.makedirs("/home/submission/deeper")
open("/home/submission/submission.csv", "w").write(sample)
open("/home/logs/agent.log", "w").write("a log\n")
os.symlink("/etc/passwd", "/home/submission/deeper/passwd")
"""
)


def core(cluster: DevCluster) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(cluster.exports["KUBECONFIG"]))


async def _relay(host: str, target_port: int) -> asyncio.Server:
    """A TCP relay from the Docker bridge's gateway to a server on this host's loopback:
    the stack's servers listen on 127.0.0.1, and Pods reach the host only by the bridge."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(accept, host, 0)


@pytest.fixture
async def k8s_stack(
    monkeypatch, engine, sandbox_stack, kubernetes_cluster: DevCluster
) -> AsyncIterator[Any]:
    # The default bridge's gateway is its subnet's first address (not always recorded).
    ipam = engine.networks.get("bridge").attrs["IPAM"]["Config"][0]
    gateway = ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])
    relays = [
        await _relay(gateway, _port(sandbox_stack.settings.grader_addr)),
        await _relay(gateway, _port(sandbox_stack.settings.registry_addr)),
    ]
    grader, registry = (f"{gateway}:{r.sockets[0].getsockname()[1]}" for r in relays)
    for name, value in {
        "MLEB_K8S_KUBECONFIG": kubernetes_cluster.exports["KUBECONFIG"],
        "MLEB_K8S_GRADER_ADDR": grader,
        "MLEB_K8S_REGISTRY_ADDR": registry,
        "MLEB_K8S_IMAGE_PULL_POLICY": "Never",
        "MLEB_K8S_POLL_INTERVAL_S": "0.3",
    }.items():
        monkeypatch.setenv(name, value)
    sandbox_stack.sandbox_settings = dataclasses.replace(
        sandbox_stack.sandbox_settings, backend="kubernetes"
    )
    sandbox_stack.api = core(kubernetes_cluster)
    yield sandbox_stack
    selector = pods.INSTANCE_LABEL
    for pod in sandbox_stack.api.list_namespaced_pod("default", label_selector=selector).items:
        with contextlib.suppress(Exception):
            sandbox_stack.api.delete_namespaced_pod(
                pod.metadata.name, "default", grace_period_seconds=0
            )
    for relay in relays:
        relay.close()


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _time(stamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


async def test_a_sandbox_runs_as_a_pod_validates_and_its_outputs_come_back(k8s_stack):
    _server, stub = await k8s_stack.start()
    sandbox = await k8s_stack.create(
        stub,
        ["python3", "-c", VALIDATE],
        image="mleb-test-python",
        env={"VISIBLE": "plain"},
        secret_env={"HIDDEN": "s3cr3t-value"},
    )
    done = await k8s_stack.wait_for(stub, sandbox.id, timeout=180)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert done.backend == S.BACKEND_KUBERNETES and done.backend_name == "kubernetes"
    assert done.image_digest
    assert done.submission_collected
    texts = [e.text for e in await k8s_stack.logs(stub, sandbox.id)]
    (line,) = [t for t in texts if t.startswith("RESULT=")]
    result = json.loads(line.removeprefix("RESULT="))
    assert "valid" in result["valid"]["result"].lower(), result
    assert result["uid"] == 1000
    assert any(f"Pod mleb-{sandbox.id} on node" in t for t in texts)
    # Outputs came back through the API, the link the agent left refused on the way.
    root = k8s_stack.sandbox_settings.work_dir / "sandboxes" / sandbox.id
    assert (root / "submission" / "submission.csv").read_text().startswith("PassengerId")
    assert (root / "logs" / "agent.log").read_text() == "a log\n"
    assert not (root / "submission" / "deeper" / "passwd").exists()


async def test_the_pod_is_not_root_drops_every_capability_and_keeps_secrets_in_a_secret(
    k8s_stack,
):
    _server, stub = await k8s_stack.start()
    # It ignores SIGTERM, as its children do: the stop must come to SIGKILL.
    sandbox = await k8s_stack.create(
        stub,
        ["sh", "-c", "trap '' TERM; sleep 60 & sleep 60"],
        image=BUSYBOX,
        secret_env={"HIDDEN": "s3cr3t-value"},
    )
    await k8s_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=120)
    pod = k8s_stack.api.read_namespaced_pod(f"mleb-{sandbox.id}", "default")
    manifest = json.dumps(k8s_stack.api.api_client.sanitize_for_serialization(pod))
    assert "s3cr3t-value" not in manifest
    spec = pod.spec
    assert spec.security_context.run_as_non_root and spec.security_context.run_as_user == 1000
    assert spec.automount_service_account_token is False
    assert spec.active_deadline_seconds > 60
    for container in [*spec.containers, *spec.init_containers]:
        context = container.security_context
        assert context.capabilities.drop == ["ALL"] and context.allow_privilege_escalation is False
    # The Secret belongs to the Pod: Kubernetes deletes it with the Pod.
    secret = k8s_stack.api.read_namespaced_secret(f"mleb-{sandbox.id}", "default")
    assert [o.uid for o in secret.metadata.owner_references] == [pod.metadata.uid]
    await stub.StopSandbox(
        sandbox_service_pb2.StopSandboxRequest(sandbox_id=sandbox.id), metadata=k8s_stack.metadata
    )
    done = await k8s_stack.wait_for(stub, sandbox.id, timeout=60)
    assert done.state == S.SANDBOX_STATE_CANCELLED, done.failure_message
    # Stopped inside the Pod after the grace period (1 s here), not left to its deadline.
    assert _time(done.finished_at) - _time(done.started_at) < 30


async def test_the_time_limit_ends_the_pod_and_keeps_its_submission(k8s_stack):
    _server, stub = await k8s_stack.start()
    sandbox = await k8s_stack.create(
        stub,
        ["sh", "-c", f"{SUBMIT}; sleep 120"],
        image=BUSYBOX,
        time_limit=duration_pb2.Duration(seconds=4),
    )
    done = await k8s_stack.wait_for(stub, sandbox.id, timeout=120)
    assert done.state == S.SANDBOX_STATE_TIMED_OUT, done.failure_message
    assert done.submission_collected


async def test_an_image_the_node_cannot_have_fails_the_sandbox(k8s_stack):
    _server, stub = await k8s_stack.start()
    sandbox = await k8s_stack.create(stub, ["true"], image="mleb-no-such-image")
    done = await k8s_stack.wait_for(stub, sandbox.id, timeout=120)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert "mleb-no-such-image" in done.failure_message


async def test_allowlist_mode_is_refused_before_anything_is_recorded(k8s_stack):
    _server, stub = await k8s_stack.start()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await k8s_stack.create(
            stub,
            ["true"],
            image=BUSYBOX,
            network=S.NetworkPolicy(mode=S.NETWORK_MODE_ALLOWLIST, allowed_hosts=["x.org:443"]),
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "allowlist" in refused.value.details()


@contextlib.contextmanager
def advertised_gpus(api, count: int):
    """`nvidia.com/gpu` on the dev node, as a device plugin would advertise it."""
    (node,) = api.list_node().items
    path = "/status/capacity/nvidia.com~1gpu"
    api.patch_node_status(node.metadata.name, [{"op": "add", "path": path, "value": str(count)}])
    try:
        yield
    finally:
        api.patch_node_status(node.metadata.name, [{"op": "remove", "path": path}])


async def test_more_sandboxes_than_gpus_wait_for_the_scheduler(k8s_stack):
    with advertised_gpus(k8s_stack.api, 2):
        _server, stub = await k8s_stack.start()
        ids = [
            (
                await k8s_stack.create(
                    stub,
                    ["sh", "-c", f"sleep 5; {SUBMIT}"],
                    image=BUSYBOX,
                    # Half a CPU each: the node's two would otherwise bind first.
                    resources=S.Resources(gpu_count=1, cpus=0.5),
                )
            ).id
            for _ in range(3)
        ]
        most_running, saw_queued = 0, False
        async with asyncio.timeout(180):
            while True:
                states = [(await k8s_stack.get(stub, i)).state for i in ids]
                running = states.count(S.SANDBOX_STATE_RUNNING)
                most_running = max(most_running, running)
                saw_queued |= running == 2 and S.SANDBOX_STATE_PENDING in states
                if all(s in (S.SANDBOX_STATE_SUCCEEDED, S.SANDBOX_STATE_FAILED) for s in states):
                    break
                await asyncio.sleep(0.2)
    done = [await k8s_stack.get(stub, i) for i in ids]
    for sandbox in done:
        assert sandbox.state == S.SANDBOX_STATE_SUCCEEDED, sandbox.failure_message
    assert most_running == 2 and saw_queued


async def test_a_restarted_service_adopts_its_pods_by_label(k8s_stack):
    server, stub = await k8s_stack.start()
    sandbox = await k8s_stack.create(
        stub, ["sh", "-c", f"echo before; sleep 6; echo after; {SUBMIT}"], image=BUSYBOX
    )
    await k8s_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=120)
    await server.stop(grace=0)
    _server, stub = await k8s_stack.start()
    done = await k8s_stack.wait_for(stub, sandbox.id, timeout=120)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert done.submission_collected
    texts = [e.text for e in await k8s_stack.logs(stub, sandbox.id)]
    assert texts.count("before") == 1 and texts.count("after") == 1


async def test_a_pod_deleted_by_someone_else_is_an_infrastructure_failure(k8s_stack):
    """A drain, an eviction or an operator's delete stops the agent: its exit code then says
    nothing of the agent, and the run is lost, never the agent's failure."""
    _server, stub = await k8s_stack.start()
    sandbox = await k8s_stack.create(stub, ["sleep", "120"], image=BUSYBOX)
    await k8s_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=120)
    k8s_stack.api.delete_namespaced_pod(f"mleb-{sandbox.id}", "default", grace_period_seconds=1)
    done = await k8s_stack.wait_for(stub, sandbox.id, timeout=120)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_class == S.FAILURE_CLASS_INFRASTRUCTURE
    assert done.failure_reason == S.FAILURE_REASON_LOST
    assert "deleted" in done.failure_message or "gone" in done.failure_message


async def test_an_agent_of_the_same_user_cannot_trace_its_pods_endpoints(k8s_stack):
    """The endpoints container shares the agent's user and process namespace (to stop it);
    its processes are non-dumpable, so the agent can neither read their memory nor their
    environment."""
    # (Spelt in two halves: this script's own command line must not match.)
    probe = (
        "for p in /proc/[0-9]*; do "
        "if grep -q 'pod_side''car' $p/cmdline 2>/dev/null; then "
        "cat $p/environ >/dev/null 2>&1 && echo READ || echo DENIED; fi; done; "
        f"{SUBMIT}"
    )
    _server, stub = await k8s_stack.start()
    sandbox = await k8s_stack.create(stub, ["sh", "-c", probe], image=BUSYBOX)
    done = await k8s_stack.wait_for(stub, sandbox.id, timeout=120)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    texts = [e.text for e in await k8s_stack.logs(stub, sandbox.id)]
    verdicts = [t for t in texts if t in ("READ", "DENIED")]
    assert verdicts and set(verdicts) == {"DENIED"}, texts


async def test_a_sparse_file_past_the_artifacts_cap_is_the_agents_loss(k8s_stack):
    """A 5 GiB sparse file costs the agent nothing to make; its collection stops at the cap
    (1 MiB here) instead of filling the service's disk or memory, and the run keeps its
    exit: no outputs, not an infrastructure failure."""
    _server, stub = await k8s_stack.start(max_artifacts_bytes=1 << 20)
    sparse = (
        "import shutil; shutil.copy('/home/data/sample_submission.csv', "
        "'/home/submission/submission.csv'); "
        "open('/home/submission/huge.bin', 'wb').truncate(5 << 30)"
    )
    sandbox = await k8s_stack.create(stub, ["python3", "-c", sparse], image="mleb-test-python")
    done = await k8s_stack.wait_for(stub, sandbox.id, timeout=120)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert not done.submission_collected
    root = k8s_stack.sandbox_settings.work_dir / "sandboxes" / sandbox.id
    assert not (root / "submission" / "huge.bin").exists()


def test_the_manifests_network_policies_are_accepted_by_a_real_api_server(kubernetes_cluster):
    """deploy/k8s's policies for sandbox Pods, as sent to a real apiserver and read back.
    They are stored, not enforced: the dev cluster has no network plugin (docs/deploy.md)."""
    import yaml
    from kubernetes import client, config

    api = client.NetworkingV1Api(
        config.new_client_from_config(kubernetes_cluster.exports["KUBECONFIG"])
    )
    manifest = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "sandbox.yaml"
    policies = [
        doc
        for doc in yaml.safe_load_all(manifest.read_text())
        if doc and doc["kind"] == "NetworkPolicy"
    ]
    assert {p["metadata"]["name"] for p in policies} == {
        "sandbox-default-deny",
        "sandbox-internet",
    }
    for policy in policies:
        policy["metadata"]["namespace"] = "default"
        api.create_namespaced_network_policy("default", policy)
        try:
            stored = api.read_namespaced_network_policy(policy["metadata"]["name"], "default")
            sent = policy["spec"]
            assert stored.spec.pod_selector.match_labels == sent["podSelector"]["matchLabels"]
            assert sorted(stored.spec.policy_types) == sorted(sent["policyTypes"])
            assert len(stored.spec.egress) == len(sent["egress"])
        finally:
            api.delete_namespaced_network_policy(policy["metadata"]["name"], "default")
