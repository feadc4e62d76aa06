"""What an agent leaves in its outputs must never wedge the service, on any backend: these
run on the local backend through the real sandbox service, so they need no Docker."""

from __future__ import annotations

import asyncio

import grpc
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from tests.fixtures.sandbox_stack import agent

S = sandbox_pb2

DEEP_OUTPUTS = (
    "import os\n"
    "path = os.environ['LOGS_DIR']\n"
    "for _ in range(80):\n"
    "    path = os.path.join(path, 'd')\n"
    "os.makedirs(path)\n"
)
BIG_SPARSE = (
    "import os\n"
    "with open(os.path.join(os.environ['CODE_DIR'], 'sparse.bin'), 'wb') as f:\n"
    "    f.truncate(1 << 30)\n"
    "import time; time.sleep(60)\n"
)


async def test_outputs_nested_past_the_walk_limits_still_let_the_sandbox_finish(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(stub, agent(DEEP_OUTPUTS))
    done = await sandbox_stack.wait_for(stub, sandbox.id, timeout=30)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    # The archive refuses the tree with a clear status, not INTERNAL.
    request = sandbox_service_pb2.DownloadArtifactsRequest(sandbox_id=sandbox.id)
    try:
        async for _ in stub.DownloadArtifacts(request, metadata=sandbox_stack.metadata):
            pass
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    else:
        raise AssertionError("a tree 80 folders deep was archived")


async def test_a_download_abandoned_mid_build_gives_its_slot_and_scratch_back(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(stub, agent(BIG_SPARSE))
    await sandbox_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING})
    await asyncio.sleep(1)
    request = sandbox_service_pb2.DownloadArtifactsRequest(sandbox_id=sandbox.id)

    async def download(timeout: float) -> int:
        size = 0
        async for reply in stub.DownloadArtifacts(
            request, metadata=sandbox_stack.metadata, timeout=timeout
        ):
            size += len(reply.data)
        return size

    try:
        await download(0.05)  # hashing 1 GiB of holes takes longer than this
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err
    # Once the abandoned build is done, its slot is free again: a download goes through.
    async with asyncio.timeout(60):
        while True:
            try:
                assert await download(60) > 1 << 30
                break
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
                await asyncio.sleep(0.5)
    scratch = sandbox_stack.sandbox_settings.work_dir / "scratch"
    async with asyncio.timeout(10):
        while list(scratch.iterdir()):
            await asyncio.sleep(0.1)
