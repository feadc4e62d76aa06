"""Tenancy through real servers: a sandbox belongs to the lab that created it. Another lab
gets NOT_FOUND (worded like a sandbox that does not exist) on every per-sandbox RPC, and its
listings and GPU listings show nothing of it; the service role sees every lab's."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.common.auth import Role, TokenAuthority
from services.sandbox.gpus.simulated_nvml import SimulatedNvml, h100s
from tests.conftest import bearer
from tests.fixtures.sandbox_stack import agent

S = sandbox_pb2
SS = sandbox_service_pb2

SECRET_LINE = "lab-a private log line"
WORKER = (
    "import os, shutil, time\n"
    f"print({SECRET_LINE!r}, flush=True)\n"
    "shutil.copy(os.path.join(os.environ['DATA_DIR'], 'sample_submission.csv'),\n"
    "            os.path.join(os.environ['SUBMISSION_DIR'], 'submission.csv'))\n"
    "time.sleep(float(os.environ.get('SLEEP', '0')))\n"
)


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for detail in rpc_status.from_call(error).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError("no ErrorInfo")


async def _refusal(call) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        result = call()
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    error = err.value
    return error.code(), error.details() or "", _error_info(error).reason


def _calls(stub, sandbox_id: str, metadata):
    return {
        "GetSandbox": lambda: stub.GetSandbox(
            SS.GetSandboxRequest(sandbox_id=sandbox_id), metadata=metadata
        ),
        "StreamLogs": lambda: stub.StreamLogs(
            SS.StreamLogsRequest(sandbox_id=sandbox_id), metadata=metadata
        ),
        "StreamLogs(follow)": lambda: stub.StreamLogs(
            SS.StreamLogsRequest(sandbox_id=sandbox_id, follow=True), metadata=metadata
        ),
        "StopSandbox": lambda: stub.StopSandbox(
            SS.StopSandboxRequest(sandbox_id=sandbox_id), metadata=metadata
        ),
        "DownloadArtifacts": lambda: stub.DownloadArtifacts(
            SS.DownloadArtifactsRequest(sandbox_id=sandbox_id), metadata=metadata
        ),
    }


@pytest.fixture
def lab_b(authority: TokenAuthority):
    return bearer(authority.issue(Role.LAB, "lab-b"))


async def _list(stub, metadata, **fields) -> list[str]:
    reply = await stub.ListSandboxes(SS.ListSandboxesRequest(**fields), metadata=metadata)
    return [s.id for s in reply.sandboxes]


async def test_another_lab_cannot_see_read_stop_or_download_a_sandbox(
    sandbox_stack, lab_b, authority, service_token
):
    lab_a = sandbox_stack.metadata
    _server, stub = await sandbox_stack.start()
    done = await sandbox_stack.create(stub, agent(WORKER), idempotency_key="run-1")
    assert done.tenant == "test-lab"
    done = await sandbox_stack.wait_for(stub, done.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    running = await sandbox_stack.create(stub, agent(WORKER), env={"SLEEP": "60"})
    await sandbox_stack.wait_for(stub, running.id, {S.SANDBOX_STATE_RUNNING})

    for target in (done.id, running.id):
        missing = "sbx-" + "0" * 20
        for name, call in _calls(stub, target, lab_b).items():
            code, message, reason = await _refusal(call)
            assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "SANDBOX_NOT_FOUND"), name
            assert SECRET_LINE not in message
            # Worded exactly like a sandbox that does not exist.
            _code, absent, _reason = await _refusal(_calls(stub, missing, lab_b)[name])
            assert message == absent.replace(missing, target), name

    # Nothing of lab A's in lab B's listings, whatever the filters say.
    assert await _list(stub, lab_b) == []
    assert await _list(stub, lab_b, owner="test-lab") == []
    assert await _list(stub, lab_b, competition_id=done.competition_id) == []

    # The refused stop did nothing; the owner still reads its logs and artifacts.
    assert (await sandbox_stack.get(stub, running.id)).state == S.SANDBOX_STATE_RUNNING
    assert SECRET_LINE in [e.text for e in await sandbox_stack.logs(stub, done.id)]
    chunks = stub.DownloadArtifacts(SS.DownloadArtifactsRequest(sandbox_id=done.id), metadata=lab_a)
    assert b"".join([c.data async for c in chunks])

    # Lab B's request fields cannot claim lab A: owner is a label, tenant comes from the token.
    b_reply = await stub.CreateSandbox(
        sandbox_stack.request(agent(WORKER), owner="test-lab", idempotency_key="run-1"),
        metadata=lab_b,
    )
    b_sandbox = b_reply.sandbox
    assert b_reply.created
    assert b_sandbox.id != done.id and b_sandbox.tenant == "lab-b"
    assert b_sandbox.owner == "test-lab"
    assert set(await _list(stub, lab_a)) == {done.id, running.id}
    assert await _list(stub, lab_b) == [b_sandbox.id]
    # Idempotency keys are per lab: lab A's repeat still finds its own sandbox.
    again = await stub.CreateSandbox(
        sandbox_stack.request(agent(WORKER), idempotency_key="run-1"), metadata=lab_a
    )
    assert (again.created, again.sandbox.id) == (False, done.id)

    # A token of lab A's tenant under another subject sees lab A's sandboxes.
    alice = bearer(authority.issue(Role.LAB, "alice", tenant="test-lab"))
    assert (await stub.GetSandbox(SS.GetSandboxRequest(sandbox_id=done.id), metadata=alice)).sandbox
    assert set(await _list(stub, alice)) == {done.id, running.id}

    # The service role sees every lab's.
    service = bearer(service_token)
    assert set(await _list(stub, service)) == {done.id, running.id, b_sandbox.id}
    seen = await stub.GetSandbox(SS.GetSandboxRequest(sandbox_id=done.id), metadata=service)
    assert seen.sandbox.tenant == "test-lab"
    await stub.StopSandbox(SS.StopSandboxRequest(sandbox_id=running.id), metadata=service)
    await stub.StopSandbox(SS.StopSandboxRequest(sandbox_id=b_sandbox.id), metadata=lab_b)


async def test_ownership_is_durable_across_a_restart(sandbox_stack, lab_b):
    first, stub = await sandbox_stack.start()
    created = await sandbox_stack.create(stub, agent(WORKER))
    await sandbox_stack.wait_for(stub, created.id)
    await first.stop(grace=0.5)
    _second, stub = await sandbox_stack.start()
    for name, call in _calls(stub, created.id, lab_b).items():
        code, _message, _reason = await _refusal(call)
        assert code == grpc.StatusCode.NOT_FOUND, name
    assert (await sandbox_stack.get(stub, created.id)).tenant == "test-lab"
    assert await _list(stub, lab_b) == []


async def test_gpu_listing_hides_which_sandbox_of_another_lab_holds_a_gpu(
    sandbox_stack, lab_b, service_token
):
    _server, stub = await sandbox_stack.start(nvml=SimulatedNvml(h100s(2)))
    created = await sandbox_stack.create(
        stub,
        agent(WORKER),
        env={"SLEEP": "60"},
        resources=S.Resources(gpu_count=1),
    )
    await sandbox_stack.wait_for(stub, created.id, {S.SANDBOX_STATE_RUNNING})

    async def holders(metadata) -> set[str]:
        reply = await stub.ListGpus(SS.ListGpusRequest(), metadata=metadata)
        return {g.leased_by for g in reply.gpus} - {""}

    assert await holders(sandbox_stack.metadata) == {created.id}
    assert await holders(bearer(service_token)) == {created.id}
    others = await holders(lab_b)
    assert len(others) == 1 and created.id not in others
    await stub.StopSandbox(
        SS.StopSandboxRequest(sandbox_id=created.id), metadata=sandbox_stack.metadata
    )
