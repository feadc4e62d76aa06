"""The Slurm backend on the real one-node Slurm of dev_slurm.sh (two fake GPUs), with the
agents in the real Docker engine: each sandbox is a Slurm job whose node runner starts it.

Slurm, not the service, decides which sandboxes run: more sandboxes than GPUs queue in Slurm
(PENDING) and run as GPUs free up, each with its own device.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.sandbox.backends.slurm.backend import SlurmBackend, SlurmSettings
from tests.fixtures.cluster_fixtures import slurm_env
from tests.fixtures.dev_clusters import DevCluster
from tests.fixtures.sandbox_docker import containers_of
from tests.integration.sandbox.agent_scripts import POST_TO_VALIDATE

pytestmark = pytest.mark.docker
S = sandbox_pb2
BUSYBOX = "mleb-test-busybox"
# What the agent sees of its GPUs, then a while to hold them.
SHOW_GPUS = "ls /dev | grep nvidia; echo visible=$CUDA_VISIBLE_DEVICES; sleep {hold}"
SUBMIT = "cp /home/data/sample_submission.csv /home/submission/submission.csv"


# Quick polls; the dev cluster's filesystem is local, so it shows a runner's files at once.
def squeue(cluster: DevCluster) -> dict[str, str]:
    """Job name -> state, for every job the controller knows."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "-o", "%j %T"],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def runner_pids(sandbox_id: str) -> list[int]:
    """The node runner processes of a sandbox's job."""
    found = subprocess.run(
        ["pgrep", "-f", f"services.sandbox.node.runner .*{sandbox_id}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(pid) for pid in found.stdout.split()]


async def hold_both_gpus(stack, stub) -> list:
    """Two sandboxes that hold the cluster's two GPUs, running: a one-GPU sandbox created
    after them queues in Slurm."""
    holders = []
    for _ in range(2):
        holder = await stack.create(
            stub, ["sleep", "120"], image=BUSYBOX, resources=S.Resources(gpu_count=1)
        )
        await stack.wait_for(stub, holder.id, {S.SANDBOX_STATE_RUNNING}, timeout=60)
        holders.append(holder)
    return holders


@pytest.fixture
async def slurm_stack(monkeypatch, engine, docker_stack, slurm_cluster: DevCluster):
    """The sandbox service stack on the Slurm backend, the cluster's exports in its env
    (monkeypatch first: its teardown, which drops them, comes after the servers stop)."""
    for name, value in slurm_env(slurm_cluster, docker_stack).items():
        monkeypatch.setenv(name, value)
    docker_stack.sandbox_settings = dataclasses.replace(
        docker_stack.sandbox_settings, backend="slurm"
    )
    yield docker_stack
    # Nothing of this test may stay queued on the cluster the session shares.
    for name in squeue(slurm_cluster):
        if name.startswith("mleb-"):
            subprocess.run(["scancel", f"--name={name}"], env=slurm_cluster.env, check=False)


def _time(stamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


async def test_more_sandboxes_than_gpus_queue_in_slurm_and_each_gets_its_own_device(
    slurm_stack, slurm_cluster
):
    _server, stub = await slurm_stack.start()
    sandboxes = [
        await slurm_stack.create(
            stub,
            ["sh", "-c", f"{SHOW_GPUS.format(hold=4)}; {SUBMIT}"],
            image=BUSYBOX,
            resources=S.Resources(gpu_count=1),
        )
        for _ in range(3)
    ]
    ids = [s.id for s in sandboxes]
    most_running, saw_queued = 0, False
    async with asyncio.timeout(120):
        while True:
            states = [(await slurm_stack.get(stub, i)).state for i in ids]
            running = states.count(S.SANDBOX_STATE_RUNNING)
            most_running = max(most_running, running)
            saw_queued |= running == 2 and S.SANDBOX_STATE_PENDING in states
            if all(
                state in (S.SANDBOX_STATE_SUCCEEDED, S.SANDBOX_STATE_FAILED) for state in states
            ):
                break
            await asyncio.sleep(0.2)
    assert most_running == 2 and saw_queued
    done = [await slurm_stack.get(stub, i) for i in ids]
    for sandbox in done:
        assert sandbox.state == S.SANDBOX_STATE_SUCCEEDED, sandbox.failure_message
        assert sandbox.backend == S.BACKEND_SLURM and sandbox.backend_name == "slurm"
        assert sandbox.submission_collected and sandbox.image_digest
        # The GPU Slurm allocated is the one the record names and the only one it saw.
        (gpu,) = sandbox.leased_gpu_uuids
        device = gpu.rsplit(":", 1)[1]
        texts = [e.text for e in await slurm_stack.logs(stub, sandbox.id)]
        assert [t for t in texts if t.startswith("nvidia")] == [device]
        assert "visible=0" in texts
        assert any("Slurm job" in t and gpu in t for t in texts)
    # Sandboxes that ran at the same time held different devices.
    for a in done:
        for b in done:
            overlap = _time(a.started_at) < _time(b.finished_at) and _time(b.started_at) < _time(
                a.finished_at
            )
            if a.id != b.id and overlap:
                assert a.leased_gpu_uuids != b.leased_gpu_uuids
    # The queued one started only after another had finished.
    last = max(done, key=lambda s: _time(s.started_at))
    assert any(_time(s.finished_at) <= _time(last.started_at) + 1.0 for s in done if s != last)


async def test_stop_cancels_a_queued_job_and_stops_a_running_one(
    engine, slurm_stack, slurm_cluster
):
    _server, stub = await slurm_stack.start()
    holders = [
        await slurm_stack.create(
            stub, ["sleep", "120"], image=BUSYBOX, resources=S.Resources(gpu_count=1)
        )
        for _ in range(2)
    ]
    # Both hold their GPUs before the third is even submitted: Slurm, not the order of
    # creation, decides who runs first.
    for holder in holders:
        await slurm_stack.wait_for(stub, holder.id, {S.SANDBOX_STATE_RUNNING}, timeout=60)
    queued = await slurm_stack.create(
        stub, ["true"], image=BUSYBOX, resources=S.Resources(gpu_count=1)
    )
    await asyncio.sleep(1.5)
    assert (await slurm_stack.get(stub, queued.id)).state == S.SANDBOX_STATE_PENDING
    assert squeue(slurm_cluster)[f"mleb-{queued.id}"] == "PENDING"

    for sandbox in (queued, holders[0]):
        stopped = await stub.StopSandbox(
            sandbox_service_pb2.StopSandboxRequest(
                sandbox_id=sandbox.id, grace_period=duration_pb2.Duration(seconds=1)
            ),
            metadata=slurm_stack.metadata,
        )
        done = await slurm_stack.wait_for(stub, stopped.sandbox.id, timeout=60)
        assert done.state == S.SANDBOX_STATE_CANCELLED
        async with asyncio.timeout(30):
            while squeue(slurm_cluster).get(f"mleb-{sandbox.id}", "COMPLETED") not in (
                "COMPLETED",
                "CANCELLED",
            ):
                await asyncio.sleep(0.2)
    # The stopped agent's containers went with its job; the other still runs.
    async with asyncio.timeout(20):
        while any(
            c.labels.get("mleb.sandbox") == holders[0].id
            for c in containers_of(engine, slurm_stack)
        ):
            await asyncio.sleep(0.2)
    assert (await slurm_stack.get(stub, holders[1].id)).state == S.SANDBOX_STATE_RUNNING
    assert not (await slurm_stack.get(stub, queued.id)).leased_gpu_uuids


async def test_the_time_limit_ends_a_slurm_sandbox_and_keeps_its_submission(slurm_stack):
    _server, stub = await slurm_stack.start()
    sandbox = await slurm_stack.create(
        stub,
        ["sh", "-c", f"{SUBMIT}; sleep 120"],
        image=BUSYBOX,
        time_limit=duration_pb2.Duration(seconds=3),
    )
    done = await slurm_stack.wait_for(stub, sandbox.id, timeout=90)
    assert done.state == S.SANDBOX_STATE_TIMED_OUT, done.failure_message
    assert done.submission_collected
    assert 2.5 < _time(done.finished_at) - _time(done.started_at) < 45


async def test_a_job_lost_with_its_runner_is_an_infrastructure_failure(
    engine, slurm_stack, slurm_cluster
):
    _server, stub = await slurm_stack.start()
    sandbox = await slurm_stack.create(stub, ["sleep", "120"], image=BUSYBOX)
    await slurm_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=60)
    # As if its node died: the runner is gone before it writes how the agent ended.
    for pid in runner_pids(sandbox.id):
        os.kill(pid, signal.SIGKILL)
    done = await slurm_stack.wait_for(stub, sandbox.id, timeout=60)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_class == S.FAILURE_CLASS_INFRASTRUCTURE
    assert done.failure_reason == S.FAILURE_REASON_LOST
    assert "without its node runner's exit record" in done.failure_message
    # The killed runner could not remove the agent: the node epilog did, when the job ended.
    async with asyncio.timeout(30):
        while containers_of(engine, slurm_stack):
            await asyncio.sleep(0.2)


async def test_a_killed_service_adopts_its_running_and_queued_jobs_on_restart(
    slurm_stack, slurm_cluster
):
    env = {
        **slurm_stack.served_env(
            MLEB_SANDBOX_QUEUE_POLL_INTERVAL_S="0.3",
            # The dev cluster's node has 4 GB; the default (8 GiB) fits no node there.
            MLEB_SANDBOX_DEFAULT_MEMORY_BYTES=str(1 << 30),
        ),
        **slurm_env(slurm_cluster, slurm_stack),
    }
    async with slurm_stack.served(env) as (process, stub):
        script = f"echo before; sleep 6; echo after; {SUBMIT}"
        running = [
            await slurm_stack.create(
                stub, ["sh", "-c", script], image=BUSYBOX, resources=S.Resources(gpu_count=1)
            )
            for _ in range(2)
        ]
        for sandbox in running:
            await slurm_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=60)
        queued = await slurm_stack.create(
            stub, ["sh", "-c", SUBMIT], image=BUSYBOX, resources=S.Resources(gpu_count=1)
        )
        async with asyncio.timeout(30):  # its job waits in Slurm's queue
            while squeue(slurm_cluster).get(f"mleb-{queued.id}") != "PENDING":
                await asyncio.sleep(0.1)
        process.kill()  # SIGKILL, mid-run
    # Away until the queued one has got its GPU and its agent runs.
    started = slurm_stack.sandbox_settings.work_dir / "slurm-jobs" / queued.id / "started.json"
    async with asyncio.timeout(60):
        while not started.exists():
            await asyncio.sleep(0.1)
    restarted = time.time()
    async with slurm_stack.served(env) as (_process, stub):
        for sandbox in [*running, queued]:
            done = await slurm_stack.wait_for(stub, sandbox.id, timeout=120)
            assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
            assert done.submission_collected
        # Its time ran from its start on the node, not from when the service learnt of it.
        assert _time((await slurm_stack.get(stub, queued.id)).started_at) < restarted
        for sandbox in running:
            texts = [e.text for e in await slurm_stack.logs(stub, sandbox.id)]
            assert texts.count("before") == 1 and texts.count("after") == 1
            assert any("re-attached" in t for t in texts)


async def test_the_job_inherits_none_of_the_services_secrets(
    slurm_stack, slurm_cluster, monkeypatch
):
    """sbatch exports the caller's whole environment by default; the backend names what the
    job inherits, so the service's own keys never reach a node."""
    monkeypatch.setenv("MLEB_AUTH_SECRET", "k:" + "s" * 40)
    _server, stub = await slurm_stack.start()
    sandbox = await slurm_stack.create(stub, ["sleep", "60"], image=BUSYBOX)
    await slurm_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=60)
    runners = runner_pids(sandbox.id)
    assert runners
    for pid in runners:
        names = {
            item.split(b"=", 1)[0].decode()
            for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if item
        }
        assert "SLURM_JOB_ID" in names
        assert not {n for n in names if n.startswith("MLEB_")}
    await stub.StopSandbox(
        sandbox_service_pb2.StopSandboxRequest(sandbox_id=sandbox.id), metadata=slurm_stack.metadata
    )
    # A node's failure must not requeue it: the runner has deleted the spec it would need.
    shown = slurm(slurm_cluster, "scontrol", "show", "job", job_id(slurm_cluster, sandbox.id))
    assert "Requeue=0" in shown


def slurm(cluster: DevCluster, *argv: str, user: str = "") -> str:
    as_user = ["runuser", "-u", user, "--", "env", f"SLURM_CONF={cluster.env['SLURM_CONF']}"]
    return subprocess.run(
        [*(as_user if user else []), *argv],
        env=cluster.env,
        capture_output=True,
        text=True,
        check=True,
        cwd="/tmp",
    ).stdout


def job_id(cluster: DevCluster, sandbox_id: str) -> str:
    out = slurm(
        cluster, "squeue", "--noheader", "--states=all", f"--name=mleb-{sandbox_id}", "-o%i"
    )
    (found,) = out.split()
    return found


async def test_a_queued_sandbox_slurm_will_never_start_fails_instead_of_waiting_forever(
    slurm_stack, slurm_cluster
):
    """A job Slurm took can become one it will never start: here an operator lowers the
    partition's time limit below the queued job's. Slurm keeps it queued for ever (reason
    PartitionConfig) unless EnforcePartLimits says otherwise; the sandbox must not wait."""
    _server, stub = await slurm_stack.start()
    await hold_both_gpus(slurm_stack, stub)
    sandbox = await slurm_stack.create(
        stub, ["true"], image=BUSYBOX, resources=S.Resources(gpu_count=1)
    )
    partition = f"PartitionName={slurm_cluster.exports['MLEB_SLURM_PARTITION']}"
    slurm(slurm_cluster, "scontrol", "update", partition, "MaxTime=1")
    try:
        done = await slurm_stack.wait_for(stub, sandbox.id, timeout=60)
    finally:
        slurm(slurm_cluster, "scontrol", "update", partition, "MaxTime=INFINITE")
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_class == S.FAILURE_CLASS_INFRASTRUCTURE
    assert "will never start" in done.failure_message
    # Slurm 22.05 gives PartitionConfig here; others say PartitionTimeLimit.
    assert (
        "(PartitionConfig)" in done.failure_message or "PartitionTimeLimit" in done.failure_message
    )
    assert squeue(slurm_cluster)[f"mleb-{sandbox.id}"] == "CANCELLED"


async def test_a_stop_by_slurm_itself_is_no_exit_of_the_agent(slurm_stack, slurm_cluster):
    """Slurm's own SIGTERM (its time limit, an operator's scancel, a preemption) stops the
    agent; its exit code then says nothing of the agent, so the sandbox is not the agent's
    failure."""
    _server, stub = await slurm_stack.start()
    sandbox = await slurm_stack.create(stub, ["sleep", "120"], image=BUSYBOX)
    await slurm_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=60)
    # What a time limit sends first (then SIGKILL after KillWait).
    slurm(slurm_cluster, "scancel", "--signal=TERM", "--batch", job_id(slurm_cluster, sandbox.id))
    done = await slurm_stack.wait_for(stub, sandbox.id, timeout=60)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_class == S.FAILURE_CLASS_INFRASTRUCTURE
    assert done.failure_reason == S.FAILURE_REASON_LOST
    assert "Slurm stopped job" in done.failure_message


async def test_reconcile_takes_no_path_and_no_job_from_what_others_submit(
    slurm_stack, slurm_cluster
):
    """Any cluster user may name a job `mleb-…` and give it this instance's comment; its
    name must never become a path, nor its job this instance's. A job folder whose
    submission a crash cut short loses its spec (the sandbox's secrets)."""
    settings = slurm_stack.sandbox_settings
    comment = f"mleb:{settings.node}/{settings.instance_id}"
    jobs_dir = settings.work_dir / "slurm-jobs"
    jobs_dir.mkdir(parents=True)
    victim = settings.work_dir / "victim"
    victim.mkdir()
    (victim / "keep").write_text("mine")
    wrap = ["--wrap=true", "--output=/dev/null", f"--comment={comment}"]
    slurm(slurm_cluster, "sbatch", "--job-name=mleb-../victim", *wrap)
    slurm(slurm_cluster, "sbatch", "--job-name=mleb-sbx-forged", *wrap, user="nobody")
    # The debris of a submission cut short, and a folder of another instance.
    for name, owner in (("sbx-cut-short", comment), ("sbx-other", "mleb:elsewhere/x")):
        (jobs_dir / name).mkdir()
        (jobs_dir / name / "job.json").write_text(json.dumps({"comment": owner, "job_id": ""}))
        (jobs_dir / name / "spec.json").write_text("{}")
    async with asyncio.timeout(30):
        while any(
            state not in ("COMPLETED", "FAILED")
            for name, state in squeue(slurm_cluster).items()
            if name in ("mleb-../victim", "mleb-sbx-forged")
        ):
            await asyncio.sleep(0.2)

    backend = SlurmBackend(settings, SlurmSettings.from_env())
    assert await backend.list_owned({}) == []
    await slurm_stack.start()  # reconcile removes what it owns and no longer needs
    assert (victim / "keep").read_text() == "mine"
    assert not (jobs_dir / "sbx-cut-short").exists()
    assert (jobs_dir / "sbx-other" / "spec.json").exists()


async def test_a_job_squeue_no_longer_names_is_found_by_its_folder_on_restart(
    slurm_stack, slurm_cluster
):
    """The controller forgets a job MinJobAge (300 s) after it ended: a service away longer
    must still find the run, finished, rather than record it lost. (Here the job's comment
    changes while the service is away, so squeue no longer names it as this instance's.)"""
    env = {
        **slurm_stack.served_env(
            MLEB_SANDBOX_QUEUE_POLL_INTERVAL_S="0.3",
            MLEB_SANDBOX_DEFAULT_MEMORY_BYTES=str(1 << 30),
        ),
        **slurm_env(slurm_cluster, slurm_stack),
    }
    async with slurm_stack.served(env) as (process, stub):
        sandbox = await slurm_stack.create(
            stub, ["sh", "-c", f"sleep 3; echo done; {SUBMIT}"], image=BUSYBOX
        )
        await slurm_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=60)
        process.kill()
    job = job_id(slurm_cluster, sandbox.id)
    slurm(slurm_cluster, "scontrol", "update", f"JobId={job}", "Comment=forgotten")
    async with asyncio.timeout(60):
        while squeue(slurm_cluster)[f"mleb-{sandbox.id}"] != "COMPLETED":
            await asyncio.sleep(0.2)
    async with slurm_stack.served(env) as (_process, stub):
        done = await slurm_stack.wait_for(stub, sandbox.id, timeout=60)
        assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
        assert done.submission_collected
        assert "done" in [e.text for e in await slurm_stack.logs(stub, sandbox.id)]
        # Removed once the end is recorded.
        folder = slurm_stack.sandbox_settings.work_dir / "slurm-jobs" / sandbox.id
        async with asyncio.timeout(20):
            while folder.exists():
                await asyncio.sleep(0.1)


async def test_sandboxes_outlive_a_controller_that_is_away(slurm_stack, monkeypatch, tmp_path):
    """squeue and scancel fail while slurmctld restarts or fails over: the sandboxes its
    nodes still run must finish as their agents do, and a stop must still stop the agent."""
    _server, stub = await slurm_stack.start()
    finishing = await slurm_stack.create(stub, ["sh", "-c", f"sleep 4; {SUBMIT}"], image=BUSYBOX)
    stopped = await slurm_stack.create(stub, ["sleep", "120"], image=BUSYBOX)
    for sandbox in (finishing, stopped):
        await slurm_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=60)
    # Every Slurm command of the service now fails, as with no controller to answer.
    away = tmp_path / "slurm.conf"
    away.write_text("ClusterName=away\nSlurmctldHost=localhost(127.0.0.9)\nSlurmctldPort=9\n")
    monkeypatch.setenv("SLURM_CONF", str(away))
    await stub.StopSandbox(
        sandbox_service_pb2.StopSandboxRequest(
            sandbox_id=stopped.id, grace_period=duration_pb2.Duration(seconds=1)
        ),
        metadata=slurm_stack.metadata,
    )
    done = await slurm_stack.wait_for(stub, finishing.id, timeout=60)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert done.submission_collected
    done = await slurm_stack.wait_for(stub, stopped.id, timeout=60)
    assert done.state == S.SANDBOX_STATE_CANCELLED, done.failure_message


async def test_one_squeue_a_poll_serves_every_sandbox(slurm_stack, monkeypatch, tmp_path):
    """The controller answers one squeue per poll interval, not one per sandbox."""
    calls = tmp_path / "squeue-calls"
    shims = tmp_path / "bin"
    shims.mkdir()
    real = subprocess.run(["which", "squeue"], capture_output=True, text=True, check=True)
    (shims / "squeue").write_text(f'#!/bin/sh\necho >> {calls}\nexec {real.stdout.strip()} "$@"\n')
    (shims / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    _server, stub = await slurm_stack.start()
    # Small enough that all four fit the dev node's 4 GB at once.
    small = S.Resources(memory_bytes=256 << 20)
    sandboxes = [
        await slurm_stack.create(stub, ["sleep", "60"], image=BUSYBOX, resources=small)
        for _ in range(4)
    ]
    for sandbox in sandboxes:
        await slurm_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=60)
    before = calls.read_text().count("\n")
    await asyncio.sleep(6)
    # Polled every 0.3 s: about 20 listings in 6 s for all four, where each sandbox asking
    # for itself made 80.
    assert calls.read_text().count("\n") - before <= 30
    for sandbox in sandboxes:
        await stub.StopSandbox(
            sandbox_service_pb2.StopSandboxRequest(sandbox_id=sandbox.id),
            metadata=slurm_stack.metadata,
        )


# Validates the sample submission through the node runner's endpoint, then asks the
# allowlist proxy for a loopback destination, which it refuses.
VALIDATE_AND_PROXY = (
    POST_TO_VALIDATE
    + r"""
import json, socket
sample = open("/home/data/sample_submission.csv").read()
valid = json.loads(post(sample))
proxy = socket.create_connection(("127.0.0.1", 3128), timeout=10)
proxy.sendall(b"CONNECT localhost:9 HTTP/1.1\r\nHost: localhost:9\r\n\r\n")
refused = proxy.recv(200).decode(errors="replace").split("\r\n")[0]
print("RESULT=" + json.dumps({"valid": valid, "proxy": refused}), flush=True)
"""
)


async def test_the_node_runner_serves_validation_and_the_egress_log_comes_back(slurm_stack):
    """The endpoints are the runner's, on the agent's node (a Unix socket does not cross
    hosts); the egress log travels back through the job's folder into the record."""
    _server, stub = await slurm_stack.start()
    sandbox = await slurm_stack.create(
        stub,
        ["python3", "-c", VALIDATE_AND_PROXY],
        image="mleb-test-python",
        network=S.NetworkPolicy(mode=S.NETWORK_MODE_ALLOWLIST, allowed_hosts=["localhost:9"]),
    )
    done = await slurm_stack.wait_for(stub, sandbox.id, timeout=120)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    texts = [e.text for e in await slurm_stack.logs(stub, sandbox.id)]
    (line,) = [t for t in texts if t.startswith("RESULT=")]
    result = json.loads(line.removeprefix("RESULT="))
    assert "valid" in result["valid"]["result"].lower(), result
    assert result["proxy"].split()[1] == "403", result
    (refused,) = done.egress
    assert (refused.host, refused.port) == ("localhost", 9)
    assert refused.verdict == S.EGRESS_VERDICT_FORBIDDEN_ADDRESS and refused.connections == 1


async def test_a_request_no_node_can_hold_is_refused_before_it_is_recorded(
    slurm_stack, monkeypatch, tmp_path
):
    """Slurm's own answer (sbatch --test-only) decides: more GPUs or memory than any node of
    the partition has is the caller's to change, FAILED_PRECONDITION with Slurm's reason,
    and nothing is recorded or queued. A controller that does not answer is UNAVAILABLE."""
    _server, stub = await slurm_stack.start()
    for resources in (S.Resources(gpu_count=3), S.Resources(memory_bytes=8 << 30)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await slurm_stack.create(stub, ["true"], image=BUSYBOX, resources=resources)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        info = error_details_pb2.ErrorInfo()
        details = rpc_status.from_call(refused.value).details
        assert any(d.Unpack(info) for d in details) and info.reason == "SLURM_REFUSED"
        assert "Requested node configuration is not available" in refused.value.details()
    listed = await stub.ListSandboxes(
        sandbox_service_pb2.ListSandboxesRequest(), metadata=slurm_stack.metadata
    )
    assert not listed.sandboxes
    away = tmp_path / "slurm.conf"
    away.write_text("ClusterName=away\nSlurmctldHost=localhost(127.0.0.9)\nSlurmctldPort=9\n")
    monkeypatch.setenv("SLURM_CONF", str(away))
    with pytest.raises(grpc.aio.AioRpcError) as unanswered:
        await slurm_stack.create(stub, ["true"], image=BUSYBOX)
    assert unanswered.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_service_started_while_the_controller_is_away_reconciles_once_it_answers(
    slurm_stack, monkeypatch, tmp_path
):
    """Reconcile is retried until squeue answers: the running agent is then adopted and
    finishes, rather than going unsupervised until the next restart."""
    first, stub = await slurm_stack.start()
    sandbox = await slurm_stack.create(stub, ["sh", "-c", f"sleep 6; {SUBMIT}"], image=BUSYBOX)
    await slurm_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING}, timeout=60)
    await first.stop(grace=0.5)  # the job runs on without its service
    conf = os.environ["SLURM_CONF"]
    away = tmp_path / "slurm.conf"
    away.write_text("ClusterName=away\nSlurmctldHost=localhost(127.0.0.9)\nSlurmctldPort=9\n")
    monkeypatch.setenv("SLURM_CONF", str(away))
    _second, stub = await slurm_stack.start()
    await asyncio.sleep(3)  # reconcile fails, and is tried again
    monkeypatch.setenv("SLURM_CONF", conf)
    done = await slurm_stack.wait_for(stub, sandbox.id, timeout=90)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert done.submission_collected
    texts = [e.text for e in await slurm_stack.logs(stub, sandbox.id)]
    assert "re-attached after a service restart" in texts


async def test_a_sandbox_queued_past_its_tokens_reach_fails_and_leaves_the_queue(
    slurm_stack, slurm_cluster
):
    """Its token is minted at submission for the longest queue allowed plus the time limit
    (MLEB_SANDBOX_MAX_QUEUE_S): a sandbox queued past that would start with a dead token."""
    # Long enough for the two holders to start, short for a test.
    _server, stub = await slurm_stack.start(max_queue_s=20.0)
    await hold_both_gpus(slurm_stack, stub)
    queued = await slurm_stack.create(
        stub, ["true"], image=BUSYBOX, resources=S.Resources(gpu_count=1)
    )
    done = await slurm_stack.wait_for(stub, queued.id, timeout=60)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_class == S.FAILURE_CLASS_INFRASTRUCTURE
    assert "queued longer than 20s" in done.failure_message
    assert squeue(slurm_cluster)[f"mleb-{queued.id}"] == "CANCELLED"
