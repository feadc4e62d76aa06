"""GPU leases through real sandbox servers, with NVML faked at the `pynvml` boundary (this
machine has no GPU): exclusivity under racing creates, health, the queue, a restart, and the
Docker DeviceRequest of the leased UUIDs."""

from __future__ import annotations

import asyncio
import contextlib

import docker
import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.sandbox.gpus import inventory as gpus
from services.sandbox.gpus.simulated_nvml import SimulatedGpu, SimulatedNvml, gpu_uuid, h100s
from services.sandbox.lifecycle.core import INSTANCE_LABEL
from tests.fixtures.sandbox_stack import agent

S = sandbox_pb2
# Holds its GPUs until stopped (or 30 s), and says which ones it was given.
HOLD = (
    "import os, time\n"
    "print('gpus', os.environ['CUDA_VISIBLE_DEVICES'], flush=True)\n"
    "time.sleep(30)\n"
)


@pytest.fixture
def fake_nvml(monkeypatch) -> SimulatedNvml:
    """Four H100s; services built after this read them instead of the real NVML."""
    fake = SimulatedNvml(h100s(4))
    monkeypatch.setattr(gpus, "pynvml", fake)
    return fake


def one_gpu(count: int = 1, **fields) -> sandbox_pb2.Resources:
    return S.Resources(gpu_count=count, **fields)


def error_reason(error: grpc.aio.AioRpcError) -> str:
    for detail in rpc_status.from_call(error).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


async def holders(sandbox_stack, stub) -> dict[str, str]:
    reply = await stub.ListGpus(
        sandbox_service_pb2.ListGpusRequest(), metadata=sandbox_stack.metadata
    )
    return {gpu.uuid: gpu.leased_by for gpu in reply.gpus}


async def stop_all(sandbox_stack, stub, sandbox_ids) -> None:
    grace = duration_pb2.Duration(nanos=200_000_000)
    for sandbox_id in sandbox_ids:
        await stub.StopSandbox(
            sandbox_service_pb2.StopSandboxRequest(sandbox_id=sandbox_id, grace_period=grace),
            metadata=sandbox_stack.metadata,
        )
    for sandbox_id in sandbox_ids:
        await sandbox_stack.wait_for(stub, sandbox_id)


async def printed_gpus(sandbox_stack, stub, sandbox_id: str) -> str:
    async with asyncio.timeout(30):
        while True:
            for entry in await sandbox_stack.logs(stub, sandbox_id):
                if entry.text.startswith("gpus "):
                    return entry.text.removeprefix("gpus ")
            await asyncio.sleep(0.05)


async def test_twenty_racing_creates_on_two_servers_share_four_gpus_exclusively(
    sandbox_stack, fake_nvml
):
    """Two service instances on one database and node race 20 creates for 4 GPUs."""
    stubs = [(await sandbox_stack.start())[1], (await sandbox_stack.start())[1]]
    results = await asyncio.gather(
        *(sandbox_stack.create(stubs[i % 2], agent(HOLD), resources=one_gpu()) for i in range(20)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, sandbox_pb2.Sandbox)]
    lost = [r for r in results if not isinstance(r, sandbox_pb2.Sandbox)]
    try:
        assert len(won) == 4, lost[:1]
        assert all(isinstance(e, grpc.aio.AioRpcError) for e in lost), lost[:1]
        assert {(e.code(), error_reason(e)) for e in lost} == {
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "GPUS_EXHAUSTED")
        }
        leased = [list(s.leased_gpu_uuids) for s in won]
        assert sorted(u for us in leased for u in us) == [gpu_uuid(i) for i in range(4)]
        assert await holders(sandbox_stack, stubs[0]) == {
            uuid: s.id for s in won for uuid in s.leased_gpu_uuids
        }
        # Each agent sees its own GPU and no other.
        for sandbox in won:
            seen = await printed_gpus(sandbox_stack, stubs[0], sandbox.id)
            assert seen == sandbox.leased_gpu_uuids[0]
    finally:
        await stop_all(sandbox_stack, stubs[0], [s.id for s in won])
    assert set((await holders(sandbox_stack, stubs[1])).values()) == {""}


async def test_unhealthy_gpus_are_shown_but_never_leased(sandbox_stack, fake_nvml):
    fake_nvml.gpus = [
        SimulatedGpu("GPU-ecc", volatile_uncorrected_ecc=1),
        SimulatedGpu("GPU-pending", remapped_rows=(0, 0, 1, 0)),
        SimulatedGpu("GPU-good"),
    ]
    _server, stub = await sandbox_stack.start()
    listing = await stub.ListGpus(
        sandbox_service_pb2.ListGpusRequest(), metadata=sandbox_stack.metadata
    )
    assert listing.nvml_available and listing.node == "test-node"
    assert [(g.uuid, g.health) for g in listing.gpus] == [
        ("GPU-ecc", S.GPU_HEALTH_UNHEALTHY),
        ("GPU-pending", S.GPU_HEALTH_DEGRADED),
        ("GPU-good", S.GPU_HEALTH_HEALTHY),
    ]
    assert listing.gpus[0].uncorrected_ecc_errors == 1 and listing.gpus[0].health_notes
    with pytest.raises(grpc.aio.AioRpcError) as asked_by_uuid:
        await sandbox_stack.create(stub, agent(HOLD), resources=S.Resources(gpu_uuids=["GPU-ecc"]))
    assert asked_by_uuid.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(asked_by_uuid.value) == "GPU_UNHEALTHY"
    with pytest.raises(grpc.aio.AioRpcError) as too_many:
        await sandbox_stack.create(stub, agent(HOLD), resources=one_gpu(3))
    assert error_reason(too_many.value) == "NOT_ENOUGH_GPUS"
    # Degraded GPUs still work, so they are leased; only unhealthy ones are held back.
    held = await sandbox_stack.create(stub, agent(HOLD), resources=one_gpu(2))
    try:
        assert sorted(held.leased_gpu_uuids) == ["GPU-good", "GPU-pending"]
        with pytest.raises(grpc.aio.AioRpcError) as none_left:
            await sandbox_stack.create(stub, agent(HOLD), resources=one_gpu())
        assert none_left.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await stop_all(sandbox_stack, stub, [held.id])


async def test_a_create_that_waits_is_queued_until_a_gpu_is_released(sandbox_stack, fake_nvml):
    fake_nvml.gpus = h100s(1)
    _server, stub = await sandbox_stack.start()
    first = await sandbox_stack.create(stub, agent(HOLD), resources=one_gpu())
    queued = await sandbox_stack.create(
        stub, agent("print('my turn', flush=True)"), resources=one_gpu(), wait_for_gpus=True
    )
    assert queued.state == S.SANDBOX_STATE_PENDING and not queued.leased_gpu_uuids
    await sandbox_stack.wait_for(stub, first.id, {S.SANDBOX_STATE_RUNNING})
    await asyncio.sleep(0.5)  # a few queue polls: still waiting
    still = await sandbox_stack.get(stub, queued.id)
    assert still.state == S.SANDBOX_STATE_PENDING and not still.leased_gpu_uuids
    await stop_all(sandbox_stack, stub, [first.id])
    done = await sandbox_stack.wait_for(stub, queued.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert "my turn" in [e.text for e in await sandbox_stack.logs(stub, queued.id)]
    assert await holders(sandbox_stack, stub) == {gpu_uuid(0): ""}


async def test_a_lease_survives_a_restart_of_the_service(sandbox_stack, fake_nvml):
    first, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(stub, agent(HOLD), resources=one_gpu(4))
    await printed_gpus(sandbox_stack, stub, sandbox.id)
    await first.stop(grace=0.5)  # the agent keeps running, and keeps its GPUs
    _second, stub = await sandbox_stack.start()
    try:
        assert set((await holders(sandbox_stack, stub)).values()) == {sandbox.id}
        with pytest.raises(grpc.aio.AioRpcError) as busy:
            await sandbox_stack.create(stub, agent(HOLD), resources=one_gpu())
        assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        adopted = await sandbox_stack.get(stub, sandbox.id)
        assert adopted.state == S.SANDBOX_STATE_RUNNING
        assert sorted(adopted.leased_gpu_uuids) == sorted(sandbox.leased_gpu_uuids)
    finally:
        await stop_all(sandbox_stack, stub, [sandbox.id])
    assert set((await holders(sandbox_stack, stub)).values()) == {""}
    # Both service instances in this process shared one NVML initialisation.
    assert fake_nvml.calls["nvmlInit"] == 1


@pytest.mark.docker
async def test_docker_gets_the_leased_uuids_and_a_missing_runtime_releases_them(
    sandbox_stack, fake_nvml, monkeypatch, engine
):
    """No NVIDIA runtime here: the agent container is created with a DeviceRequest for the
    leased GPUs, its start fails, and that is an infrastructure failure that frees them."""
    # Reads each container's DeviceRequests from the engine just before it is started.
    # Every start goes through the low-level API, whichever way the backend asks for it.
    requested: dict[str, list] = {}
    real_start = docker.APIClient.start

    def start(api, container, *args, **kwargs):
        config = engine.api.inspect_container(container)
        requested[config["Name"]] = config["HostConfig"]["DeviceRequests"]
        return real_start(api, container, *args, **kwargs)

    monkeypatch.setattr(docker.APIClient, "start", start)
    _server, stub = await sandbox_stack.start(backend="docker")
    instance = f"{INSTANCE_LABEL}={sandbox_stack.sandbox_settings.instance_id}"
    try:
        sandbox = await sandbox_stack.create(
            stub, ["true"], image="mleb-test-busybox", resources=one_gpu(2)
        )
        leased = list(sandbox.leased_gpu_uuids)
        assert len(leased) == 2
        done = await sandbox_stack.wait_for(stub, sandbox.id)
        assert done.state == S.SANDBOX_STATE_FAILED
        assert done.failure_class == S.FAILURE_CLASS_INFRASTRUCTURE
        assert done.failure_reason in {
            S.FAILURE_REASON_GPU_UNAVAILABLE,
            S.FAILURE_REASON_RUNTIME_ERROR,
        }, done.failure_message
        assert requested[f"/mleb-{sandbox.id}"] == [
            {
                "Driver": "nvidia",
                "Count": 0,
                "DeviceIDs": leased,
                "Capabilities": [["gpu"]],
                "Options": {},
            }
        ]
        assert requested[f"/mleb-{sandbox.id}-sidecar"] is None  # only the agent gets GPUs
        assert set((await holders(sandbox_stack, stub)).values()) == {""}
        assert (
            engine.containers.list(all=True, filters={"label": instance}, ignore_removed=True) == []
        )
    finally:
        for container in engine.containers.list(
            all=True, filters={"label": instance}, ignore_removed=True
        ):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.remove(force=True)
