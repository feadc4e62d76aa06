"""Exclusive GPU leases through the service, with NVML faked at the pynvml boundary only."""

from __future__ import annotations

import asyncio

import grpc
import pynvml
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.sandbox.gpus.simulated_nvml import SimulatedNvml, gpu_uuid, h100s
from tests.fixtures.sandbox_stack import agent

S = sandbox_pb2
SHOW_GPUS = (
    "import os, time\n"
    "print('visible', os.environ['CUDA_VISIBLE_DEVICES'], flush=True)\n"
    "time.sleep(float(os.environ.get('HOLD_S', '1')))\n"
)


async def gpus(sandbox_stack, stub) -> dict[str, str]:
    reply = await stub.ListGpus(
        sandbox_service_pb2.ListGpusRequest(), metadata=sandbox_stack.metadata
    )
    return {g.uuid: g.leased_by for g in reply.gpus}


async def all_released(sandbox_stack, stub) -> None:
    """Leases go back just after the terminal state is recorded (never before)."""
    async with asyncio.timeout(10):
        while set((await gpus(sandbox_stack, stub)).values()) != {""}:
            await asyncio.sleep(0.05)


async def test_twenty_racing_creates_on_two_services_lease_four_gpus_once(sandbox_stack):
    """Two service instances share the database and the node's four GPUs."""
    nvml = SimulatedNvml(h100s(4))
    _a, stub_a = await sandbox_stack.start(nvml=nvml)
    _b, stub_b = await sandbox_stack.start(nvml=nvml)

    async def create(i: int):
        stub = stub_a if i % 2 else stub_b
        try:
            return await sandbox_stack.create(
                stub, agent(SHOW_GPUS), resources=S.Resources(gpu_count=1), env={"HOLD_S": "2"}
            )
        except grpc.aio.AioRpcError as error:
            return error

    results = await asyncio.gather(*(create(i) for i in range(20)))
    created = [r for r in results if isinstance(r, sandbox_pb2.Sandbox)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 4 and len(refused) == 16
    assert all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in refused)
    quota = error_details_pb2.QuotaFailure()
    assert any(d.Unpack(quota) for d in rpc_status.from_call(refused[0]).details)
    leased = [uuid for s in created for uuid in s.leased_gpu_uuids]
    assert sorted(leased) == sorted(gpu_uuid(i) for i in range(4))
    assert await gpus(sandbox_stack, stub_a) == {s.leased_gpu_uuids[0]: s.id for s in created}
    for sandbox in created:
        done = await sandbox_stack.wait_for(stub_a, sandbox.id)
        assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
        # The agent sees exactly its leased GPU.
        texts = [e.text for e in await sandbox_stack.logs(stub_a, sandbox.id)]
        assert f"visible {sandbox.leased_gpu_uuids[0]}" in texts
    await all_released(sandbox_stack, stub_a)
    # The leases are gone, but each record still names the GPUs its run had (issue 16).
    for sandbox in created:
        finished = await sandbox_stack.get(stub_b, sandbox.id)
        assert list(finished.leased_gpu_uuids) == list(sandbox.leased_gpu_uuids)


async def test_waiting_for_gpus_queues_in_pending_until_a_lease_frees(sandbox_stack):
    _server, stub = await sandbox_stack.start(nvml=SimulatedNvml(h100s(4)))
    holder = await sandbox_stack.create(
        stub, agent(SHOW_GPUS), resources=S.Resources(gpu_count=4), env={"HOLD_S": "60"}
    )
    queued = await sandbox_stack.create(
        stub, agent(SHOW_GPUS), resources=S.Resources(gpu_count=2), wait_for_gpus=True
    )
    later = await sandbox_stack.create(
        stub, agent(SHOW_GPUS), resources=S.Resources(gpu_count=1), wait_for_gpus=True
    )
    await sandbox_stack.wait_for(stub, holder.id, {S.SANDBOX_STATE_RUNNING})
    await asyncio.sleep(0.5)
    waiting = await sandbox_stack.get(stub, queued.id)
    assert waiting.state == S.SANDBOX_STATE_PENDING and not waiting.leased_gpu_uuids
    # A queued sandbox can be cancelled without ever starting.
    cancelled = await stub.StopSandbox(
        sandbox_service_pb2.StopSandboxRequest(sandbox_id=later.id), metadata=sandbox_stack.metadata
    )
    assert cancelled.sandbox.state == S.SANDBOX_STATE_CANCELLED
    await stub.StopSandbox(
        sandbox_service_pb2.StopSandboxRequest(sandbox_id=holder.id),
        metadata=sandbox_stack.metadata,
    )
    done = await sandbox_stack.wait_for(stub, queued.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    texts = [e.text for e in await sandbox_stack.logs(stub, queued.id)]
    assert any(t.startswith("visible GPU-") and t.count(",") == 1 for t in texts)


async def test_leases_survive_a_restart_in_the_middle_of_a_lease(sandbox_stack):
    nvml = SimulatedNvml(h100s(4))
    first, stub = await sandbox_stack.start(nvml=nvml)
    holder = await sandbox_stack.create(
        stub, agent(SHOW_GPUS), resources=S.Resources(gpu_uuids=[gpu_uuid(1), gpu_uuid(2)]),
        env={"HOLD_S": "3"},
    )  # fmt: skip
    await sandbox_stack.wait_for(stub, holder.id, {S.SANDBOX_STATE_RUNNING})
    await first.stop(grace=0.5)
    _second, stub = await sandbox_stack.start(nvml=nvml)
    held = await gpus(sandbox_stack, stub)
    assert held == {
        gpu_uuid(0): "",
        gpu_uuid(1): holder.id,
        gpu_uuid(2): holder.id,
        gpu_uuid(3): "",
    }
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await sandbox_stack.create(stub, agent("pass"), resources=S.Resources(gpu_count=3))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await sandbox_stack.create(
            stub, agent("pass"), resources=S.Resources(gpu_uuids=[gpu_uuid(2)])
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    done = await sandbox_stack.wait_for(stub, holder.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED
    await all_released(sandbox_stack, stub)


async def test_impossible_gpu_requests_are_refused_clearly(sandbox_stack):
    broken = h100s(4)
    broken[3].volatile_uncorrected_ecc = 2  # uncorrected errors: unhealthy, never leased
    _server, stub = await sandbox_stack.start(nvml=SimulatedNvml(broken))
    cases = [
        (S.Resources(gpu_count=4), grpc.StatusCode.FAILED_PRECONDITION),
        (S.Resources(gpu_uuids=[gpu_uuid(3)]), grpc.StatusCode.FAILED_PRECONDITION),
        (S.Resources(gpu_uuids=["GPU-unknown"]), grpc.StatusCode.INVALID_ARGUMENT),
        (S.Resources(gpu_count=2, gpu_uuids=[gpu_uuid(0)]), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for resources, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await sandbox_stack.create(stub, agent("pass"), resources=resources)
        assert err.value.code() == code, (resources, err.value.details())
    listing = await stub.ListGpus(
        sandbox_service_pb2.ListGpusRequest(), metadata=sandbox_stack.metadata
    )
    assert listing.nvml_available and listing.node == "test-node" and len(listing.gpus) == 4
    assert listing.gpus[3].health == S.GPU_HEALTH_UNHEALTHY and listing.gpus[3].health_notes


async def test_without_nvml_gpus_are_a_failed_precondition(sandbox_stack):
    _server, stub = await sandbox_stack.start(
        nvml=SimulatedNvml(init_error=pynvml.NVMLError_LibraryNotFound)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await sandbox_stack.create(stub, agent("pass"), resources=S.Resources(gpu_count=1))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listing = await stub.ListGpus(
        sandbox_service_pb2.ListGpusRequest(), metadata=sandbox_stack.metadata
    )
    assert not listing.nvml_available and list(listing.gpus) == []
