"""Two sandbox service instances on different nodes sharing one database: the one that does
not run a sandbox answers reads for it (GetSandbox, ListSandboxes, StreamLogs, following the
log to its end), so the service can run as several replicas behind one address."""

from __future__ import annotations

import asyncio

from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from tests.fixtures.sandbox_stack import agent

S = sandbox_pb2
# Lines written over about two seconds, so the other instance follows a live log.
TALKER = (
    "import time\nfor i in range(40):\n    print('line', i, flush=True)\n    time.sleep(0.05)\n"
)


async def test_an_instance_answers_reads_for_a_sandbox_another_runs(sandbox_stack, open_tmp):
    _a, runner = await sandbox_stack.start(node="node-a", instance_id="instance-a")
    _b, reader = await sandbox_stack.start(
        node="node-b", instance_id="instance-b", work_dir=open_tmp / "work-b"
    )
    created = await sandbox_stack.create(runner, agent(TALKER), labels={"replica": "test"})
    # Follow from the instance that does not run it, from before it starts to its end.
    followed = asyncio.create_task(sandbox_stack.logs(reader, created.id, follow=True))
    seen = await sandbox_stack.get(reader, created.id)
    assert seen.id == created.id and seen.node == "node-a"
    done = await sandbox_stack.wait_for(reader, created.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    async with asyncio.timeout(30):
        lines = await followed
    texts = [entry.text for entry in lines if entry.stream == S.LOG_STREAM_STDOUT]
    assert texts == [f"line {i}" for i in range(40)]
    # Both instances tell the same story.
    assert await sandbox_stack.logs(runner, created.id) == lines
    assert await sandbox_stack.get(runner, created.id) == done
    listed = await reader.ListSandboxes(
        sandbox_service_pb2.ListSandboxesRequest(labels={"replica": "test"}),
        metadata=sandbox_stack.metadata,
    )
    assert [s.id for s in listed.sandboxes] == [created.id]
