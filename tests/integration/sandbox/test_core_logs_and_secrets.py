"""Resumable log streams over gRPC, and secret values that go nowhere but the agent."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import grpc
import pytest
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2, sandbox_service_pb2_grpc
from sqlalchemy import MetaData, create_engine, select

from tests.fixtures.processes import spawn_server
from tests.fixtures.sandbox_stack import agent

S = sandbox_pb2
SECRET = "sk-live-0f9e8d7c6b5a4f3e2d1c"
COUNTING = (
    "import sys, time\n"
    "for i in range(400):\n"
    "    print(f'line {i}', flush=True)\n"
    "    if i % 40 == 0:\n"
    "        time.sleep(0.1)\n"
)


async def test_a_stream_cut_mid_run_resumes_without_loss_or_duplicates(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(stub, agent(COUNTING))
    received: list[sandbox_pb2.LogEntry] = []
    call = stub.StreamLogs(
        sandbox_service_pb2.StreamLogsRequest(sandbox_id=sandbox.id, follow=True),
        metadata=sandbox_stack.metadata,
    )
    async for reply in call:
        received += reply.entries
        if any(e.text == "line 50" for e in received):
            break
    call.cancel()  # the client goes away mid-run
    assert (await sandbox_stack.get(stub, sandbox.id)).state == S.SANDBOX_STATE_RUNNING
    # Resume exclusively after the last entry received; follow ends at the sandbox's end.
    async with asyncio.timeout(60):
        received += await sandbox_stack.logs(stub, sandbox.id, after=received[-1].seq, follow=True)
    done = await sandbox_stack.get(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED
    assert [e.seq for e in received] == list(range(1, done.last_log_seq + 1))
    stdout = [e.text for e in received if e.stream == S.LOG_STREAM_STDOUT]
    assert stdout == [f"line {i}" for i in range(400)]
    assert received[-1].stream == S.LOG_STREAM_SYSTEM and received[-1].text.startswith("finished")
    assert all(e.time.seconds > 0 for e in received)


async def test_secret_values_reach_the_agent_and_nothing_else(sandbox_stack):
    """Checked in every API response, every stored row and file, and the service's own log
    lines (a real `mleb serve sandbox` process, so structlog writes to a real stderr)."""
    env = sandbox_stack.served_env(MLEB_LOG_LEVEL="debug")
    process = await asyncio.to_thread(spawn_server, "sandbox", env)
    replies: list[bytes] = []
    try:
        async with grpc.aio.insecure_channel(process.address) as channel:
            stub = sandbox_service_pb2_grpc.SandboxServiceStub(channel)
            code = (
                "import hashlib, os, sys\n"
                "print('key', os.environ['API_KEY'], flush=True)\n"
                "print('token', os.environ['MLEB_SANDBOX_TOKEN'], file=sys.stderr, flush=True)\n"
                # The command is stored, so it names the secret only by its hash.
                "assert hashlib.sha256(os.environ['API_KEY'].encode()).hexdigest() == "
                + repr(hashlib.sha256(SECRET.encode()).hexdigest())
                + "\n"
            )
            request = sandbox_stack.request(
                agent(code), env={"PLAIN": "visible"}, secret_env={"API_KEY": SECRET}
            )
            created = await stub.CreateSandbox(request, metadata=sandbox_stack.metadata)
            replies.append(created.SerializeToString())
            done = await sandbox_stack.wait_for(stub, created.sandbox.id)
            assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
            assert list(done.secret_env_names) == ["API_KEY"] and dict(done.env) == {
                "PLAIN": "visible"
            }
            replies.append(done.SerializeToString())
            listing = await stub.ListSandboxes(
                sandbox_service_pb2.ListSandboxesRequest(), metadata=sandbox_stack.metadata
            )
            replies.append(listing.SerializeToString())
            entries = await sandbox_stack.logs(stub, done.id)
            replies += [e.SerializeToString() for e in entries]
            texts = [e.text for e in entries]
            # The agent printed the secret and its token; the stored log has neither.
            assert "key [REDACTED]" in texts and "token [REDACTED]" in texts
            # An error about a secret names the variable, never its value.
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await sandbox_stack.create(stub, agent("pass"), secret_env={"bad name": SECRET})
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            replies.append(
                str(err.value.details()).encode() + str(err.value.trailing_metadata()).encode()
            )
        assert process.terminate() == 0
    finally:
        process.kill()
    # A token is three base64url parts, the first two JSON ("eyJ"); an attestation's payload
    # is base64 JSON too, but never dot-joined like that.
    token = re.compile(rb"eyJ[\w-]+\.eyJ[\w-]+\.")
    for reply in replies:
        assert SECRET.encode() not in reply and not token.search(reply)
    log_text = "".join(process.lines)
    assert '"sandbox_created"' in log_text and SECRET not in log_text
    # Every row of every table in the database, and the database's files themselves.
    engine = create_engine(sandbox_stack.settings.database_url)
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                assert SECRET not in repr(tuple(row)), table.name
    engine.dispose()
    database = Path(sandbox_stack.settings.database_url.removeprefix("sqlite:///"))
    for path in database.parent.glob(database.name + "*"):
        assert SECRET.encode() not in path.read_bytes()
    for path in sandbox_stack.sandbox_settings.work_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), path
