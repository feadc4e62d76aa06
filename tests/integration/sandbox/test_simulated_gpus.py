"""MLEB_SANDBOX_SIMULATED_GPUS on a served process (issue 16, item 6): simulated devices,
real leases. A real `mleb serve sandbox` is SIGKILLed while two sandboxes hold the node's
two simulated GPUs; the restarted service keeps both leases, refuses a third, and releases
them when the runs end."""

from __future__ import annotations

import asyncio
import signal

import grpc
import pytest
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from tests.fixtures.processes import spawn_server
from tests.fixtures.sandbox_stack import agent

S = sandbox_pb2
HOLDER = (
    "import os, time\n"
    "print('visible', os.environ['CUDA_VISIBLE_DEVICES'], flush=True)\n"
    "time.sleep(4)\n"
    "open(os.environ['SUBMISSION_DIR'] + '/submission.csv', 'w').write('id\\n')\n"
)


def served_env(sandbox_stack, count: str) -> dict[str, str]:
    return sandbox_stack.served_env(
        MLEB_SANDBOX_QUEUE_POLL_INTERVAL_S="0.2", MLEB_SANDBOX_SIMULATED_GPUS=count
    )


async def holders(sandbox_stack, stub) -> dict[str, str]:
    reply = await stub.ListGpus(
        sandbox_service_pb2.ListGpusRequest(), metadata=sandbox_stack.metadata
    )
    return {g.uuid: g.leased_by for g in reply.gpus}


async def test_leases_of_simulated_gpus_survive_a_sigkill(sandbox_stack) -> None:
    env = served_env(sandbox_stack, "2")
    async with sandbox_stack.served(env) as (first, stub):
        assert any("simulated_gpus_in_use" in line for line in first.lines), first.lines
        listing = await stub.ListGpus(
            sandbox_service_pb2.ListGpusRequest(), metadata=sandbox_stack.metadata
        )
        assert len(listing.gpus) == 2
        assert all(g.name == "SIMULATED GPU" and g.simulated for g in listing.gpus)
        assert all(g.uuid.startswith("GPU-sim-") for g in listing.gpus)
        gpu = S.Resources(gpu_count=1)
        held = [await sandbox_stack.create(stub, agent(HOLDER), resources=gpu) for _ in "ab"]
        first.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.process.wait, 20)
    async with sandbox_stack.served(env) as (second, stub):
        expected = {s.leased_gpu_uuids[0]: s.id for s in held}
        assert len(expected) == 2 and await holders(sandbox_stack, stub) == expected
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await sandbox_stack.create(stub, agent("pass"), resources=gpu)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for sandbox in held:
            done = await sandbox_stack.wait_for(stub, sandbox.id)
            assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
            assert list(done.leased_gpu_uuids) == list(sandbox.leased_gpu_uuids)
            assert done.simulated_gpus and sandbox.simulated_gpus
            texts = [e.text for e in await sandbox_stack.logs(stub, sandbox.id)]
            assert f"visible {sandbox.leased_gpu_uuids[0]}" in texts
        async with asyncio.timeout(10):
            while set((await holders(sandbox_stack, stub)).values()) != {""}:
                await asyncio.sleep(0.05)
        assert second.terminate() == 0


@pytest.mark.parametrize("value", ["two", "-1", "65", "1.5"])
def test_a_bad_count_stops_the_service_at_startup(sandbox_stack, value: str) -> None:
    with pytest.raises(RuntimeError) as err:
        spawn_server("sandbox", served_env(sandbox_stack, value))
    assert "MLEB_SANDBOX_SIMULATED_GPUS" in str(err.value)
    assert "Traceback" not in str(err.value)
