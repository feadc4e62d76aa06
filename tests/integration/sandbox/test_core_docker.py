"""The sandbox service on the real Docker engine: lifecycle, OOM, time limit, recovery."""

from __future__ import annotations

import asyncio

import docker
import pytest
from google.protobuf import duration_pb2
from mleb.evidence.dsse import Envelope
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.sandbox.gpus.simulated_nvml import SimulatedNvml, h100s, simulated_node
from tests.fixtures.sandbox_docker import containers_of

pytestmark = pytest.mark.docker
S = sandbox_pb2
BUSYBOX = "mleb-test-busybox"
PYTHON = "mleb-test-python"


async def test_a_docker_sandbox_runs_to_success_and_is_cleaned_up(engine, docker_stack):
    _server, stub = await docker_stack.start()
    script = (
        "cat /home/data/description.md | head -1; ls /home/data; "
        "cp /home/data/sample_submission.csv /home/submission/submission.csv; "
        "echo code > /home/code/notes.txt; id -u; echo warn >&2"
    )
    sandbox = await docker_stack.create(stub, ["sh", "-c", script], image=BUSYBOX)
    done = await docker_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert done.backend == S.BACKEND_DOCKER and done.image_digest
    assert done.submission_collected and done.exit_code == 0
    texts = {(e.stream, e.text) for e in await docker_stack.logs(stub, done.id)}
    assert (S.LOG_STREAM_STDOUT, "# Own competition") in texts
    assert (S.LOG_STREAM_STDERR, "warn") in texts
    assert (S.LOG_STREAM_STDOUT, "0") not in texts  # never root
    # Everything the backend created for the sandbox is gone once it is recorded.
    async with asyncio.timeout(20):
        while containers_of(engine, docker_stack):
            await asyncio.sleep(0.1)


async def test_an_out_of_memory_kill_is_an_agent_failure(docker_stack):
    _server, stub = await docker_stack.start()
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n"
    sandbox = await docker_stack.create(
        stub, ["python3", "-c", code], image=PYTHON,
        resources=S.Resources(memory_bytes=96 << 20),
    )  # fmt: skip
    done = await docker_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_reason == S.FAILURE_REASON_OUT_OF_MEMORY
    assert done.failure_class == S.FAILURE_CLASS_AGENT and done.exit_code == 137


async def test_a_missing_image_is_an_infrastructure_failure(docker_stack):
    _server, stub = await docker_stack.start()
    sandbox = await docker_stack.create(stub, ["true"], image="mleb-no-such-image")
    done = await docker_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_reason == S.FAILURE_REASON_IMAGE_NOT_FOUND
    assert done.failure_class == S.FAILURE_CLASS_INFRASTRUCTURE


async def test_the_time_limit_stops_a_container_and_keeps_its_submission(docker_stack):
    _server, stub = await docker_stack.start()
    script = "echo id > /home/submission/submission.csv; echo written; sleep 60"
    sandbox = await docker_stack.create(
        stub, ["sh", "-c", script], image=BUSYBOX, time_limit=duration_pb2.Duration(seconds=3)
    )
    done = await docker_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_TIMED_OUT and done.submission_collected


async def test_a_restart_adopts_containers_and_removes_orphans_and_lost_ones(engine, docker_stack):
    first, stub = await docker_stack.start()
    script = (
        "i=0; while [ $i -lt 12 ]; do echo tick $i; i=$((i+1)); sleep 0.25; done; "
        "echo x > /home/submission/submission.csv"
    )
    limit = duration_pb2.Duration(seconds=300)
    kept = await docker_stack.create(stub, ["sh", "-c", script], image=BUSYBOX, time_limit=limit)
    lost = await docker_stack.create(stub, ["sleep", "20"], image=BUSYBOX, time_limit=limit)
    async with asyncio.timeout(30):
        while not any(e.text == "tick 3" for e in await docker_stack.logs(stub, kept.id)):
            await asyncio.sleep(0.05)
        await docker_stack.wait_for(stub, lost.id, {S.SANDBOX_STATE_RUNNING})
    await first.stop(grace=0.5)
    # While no service watches: one container vanishes, and an orphan appears.
    for container in containers_of(engine, docker_stack):
        if container.labels.get("mleb.sandbox.id") == lost.id:
            container.remove(force=True)
    orphan = engine.containers.run(
        BUSYBOX, ["sleep", "60"], detach=True,
        labels={**{k: v for k, v in containers_of(engine, docker_stack)[0].labels.items()
                   if k.startswith("mleb.") and k != "mleb.sandbox.id"},
                "mleb.sandbox.id": "sbx-orphan", "mleb.role": "agent"},
    )  # fmt: skip
    _second, stub = await docker_stack.start()
    done = await docker_stack.wait_for(stub, kept.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED and done.submission_collected
    entries = await docker_stack.logs(stub, kept.id)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert [e.text for e in entries if e.stream == S.LOG_STREAM_STDOUT] == [
        f"tick {i}" for i in range(12)
    ]
    gone = await docker_stack.wait_for(stub, lost.id)
    assert gone.state == S.SANDBOX_STATE_FAILED and gone.failure_reason == S.FAILURE_REASON_LOST
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(orphan.id)


async def test_simulated_gpus_start_on_any_engine_with_only_their_names(docker_stack):
    """MLEB_SANDBOX_SIMULATED_GPUS: no device request reaches the engine, only the names."""
    _server, stub = await docker_stack.start(nvml=simulated_node(2), simulated_gpus=2)
    sandbox = await docker_stack.create(
        stub,
        ["sh", "-c", "echo visible $CUDA_VISIBLE_DEVICES $NVIDIA_VISIBLE_DEVICES"],
        image=BUSYBOX,
        resources=S.Resources(gpu_count=1),
    )
    done = await docker_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    texts = [e.text for e in await docker_stack.logs(stub, sandbox.id)]
    (uuid,) = sandbox.leased_gpu_uuids
    assert f"visible {uuid} {uuid}" in texts and done.simulated_gpus
    # The attestation says so too (CONTRACTS.md): the model NVML names, simulated: true.
    granted = Envelope.from_json(done.attestation).statement()["predicate"]["resources"]
    assert granted["granted"]["gpus"] == [
        {"uuid": uuid, "model": "SIMULATED GPU", "simulated": True}
    ]


async def test_no_nvidia_runtime_is_an_infrastructure_failure_that_frees_the_lease(docker_stack):
    """This engine has no NVIDIA runtime, so a container asking for a GPU cannot start."""
    _server, stub = await docker_stack.start(nvml=SimulatedNvml(h100s(2)))
    sandbox = await docker_stack.create(
        stub, ["true"], image=BUSYBOX, resources=S.Resources(gpu_count=1)
    )
    assert len(sandbox.leased_gpu_uuids) == 1
    done = await docker_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_reason == S.FAILURE_REASON_GPU_UNAVAILABLE, done.failure_message
    assert done.failure_class == S.FAILURE_CLASS_INFRASTRUCTURE
    # Released right after the failure is recorded; the record keeps naming the GPU.
    meta = docker_stack.metadata
    listing = sandbox_service_pb2.ListGpusRequest()
    async with asyncio.timeout(10):
        while any(g.leased_by for g in (await stub.ListGpus(listing, metadata=meta)).gpus):
            await asyncio.sleep(0.05)
    kept = await docker_stack.get(stub, sandbox.id)
    assert list(kept.leased_gpu_uuids) == list(sandbox.leased_gpu_uuids)
