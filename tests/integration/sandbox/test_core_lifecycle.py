"""The sandbox service end to end on the local backend, through real servers: a registry,
a grader, and the sandbox service, all on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import time

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.common.v1 import common_pb2
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.sandbox.node.artifacts import remove_tree
from tests.fixtures.sandbox_stack import METADATA_ONLY, OBFUSCATED_DESCRIPTION, agent

S = sandbox_pb2

WRITE_SUBMISSION = (
    "import os, shutil, sys\n"
    "data = os.environ['DATA_DIR']\n"
    "print('files', sorted(os.listdir(data)), flush=True)\n"
    "print(open(os.path.join(data, 'description.md')).read().splitlines()[0], flush=True)\n"
    "shutil.copy(os.path.join(data, 'sample_submission.csv'),\n"
    "            os.path.join(os.environ['SUBMISSION_DIR'], 'submission.csv'))\n"
    "open(os.path.join(os.environ['CODE_DIR'], 'solution.py'), 'w').write('print(1)\\n')\n"
    "print('oops', file=sys.stderr, flush=True)\n"
)


def details(error: grpc.aio.AioRpcError) -> dict[str, object]:
    found: dict[str, object] = {}
    for detail in rpc_status.from_call(error).details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            message = kind()
            if detail.Unpack(message):
                found[kind.__name__] = message
    return found


async def test_a_sandbox_runs_to_success_with_its_record(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    created = await stub.CreateSandbox(
        sandbox_stack.request(agent(WRITE_SUBMISSION), labels={"exp": "1"}),
        metadata=sandbox_stack.metadata,
    )
    assert created.created and created.sandbox.state == S.SANDBOX_STATE_PENDING
    assert created.sandbox.id.startswith("sbx-") and created.sandbox.owner == "test-lab"
    done = await sandbox_stack.wait_for(stub, created.sandbox.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert done.HasField("exit_code") and done.exit_code == 0
    assert done.backend == S.BACKEND_LOCAL and done.backend_name == "local"
    assert done.node == "test-node"
    assert done.submission_collected and done.usage.artifacts_size_bytes > 0
    assert done.usage.cpu_seconds > 0 and done.usage.peak_memory_bytes > 0
    assert (
        done.created_at.ToDatetime()
        <= done.started_at.ToDatetime()
        <= done.finished_at.ToDatetime()
    )
    assert done.description_variant == common_pb2.DESCRIPTION_VARIANT_PLAIN
    assert done.failure_class == S.FAILURE_CLASS_UNSPECIFIED
    entries = await sandbox_stack.logs(stub, done.id)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[-1].seq == done.last_log_seq
    by_stream = {(e.stream, e.text) for e in entries}
    # Public data only, with the description; the private answers are not there.
    assert (
        S.LOG_STREAM_STDOUT,
        "files ['description.md', 'sample_submission.csv', 'train.csv']",
    ) in by_stream
    assert (S.LOG_STREAM_STDOUT, "# Own competition") in by_stream
    assert (S.LOG_STREAM_STDERR, "oops") in by_stream
    system = [e.text for e in entries if e.stream == S.LOG_STREAM_SYSTEM]
    assert system[0].startswith(f"sandbox {done.id}") and system[-1].startswith(
        "finished: SUCCEEDED"
    )


async def test_a_nonzero_exit_is_an_agent_failure(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(stub, agent("import sys; sys.exit(7)"))
    done = await sandbox_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_class == S.FAILURE_CLASS_AGENT
    assert done.failure_reason == S.FAILURE_REASON_NONZERO_EXIT and done.exit_code == 7
    assert not done.submission_collected


async def test_an_agent_that_cannot_start_is_an_infrastructure_failure(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(stub, ["/nonexistent/agent"])
    done = await sandbox_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_class == S.FAILURE_CLASS_INFRASTRUCTURE
    assert done.failure_reason == S.FAILURE_REASON_RUNTIME_ERROR
    assert "cannot start" in done.failure_message and not done.HasField("exit_code")


async def test_competition_problems_are_refused_at_create(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    cases = [
        ("no-such-competition", grpc.StatusCode.NOT_FOUND),
        (METADATA_ONLY, grpc.StatusCode.FAILED_PRECONDITION),
    ]
    for competition, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await sandbox_stack.create(stub, agent("pass"), competition_id=competition)
        assert err.value.code() == code, err.value.details()
    bad = [
        ({"competition_id": ""}, "competition_id"),
        ({"env": {"MLEB_SANDBOX_TOKEN": "x"}}, "env.MLEB_SANDBOX_TOKEN"),
        ({"env": {"A": "1"}, "secret_env": {"A": "2"}}, "secret_env"),
        ({"time_limit": duration_pb2.Duration(seconds=10**9)}, "time_limit"),
        ({"network": S.NetworkPolicy(mode=S.NETWORK_MODE_ALLOWLIST)}, "network.allowed_hosts"),
        ({"labels": {"bad key!": "v"}}, "labels"),
    ]
    for fields, field in bad:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await sandbox_stack.create(stub, agent("pass"), **fields)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details(err.value)["BadRequest"].field_violations[0].field == field
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetSandbox(sandbox_service_pb2.GetSandboxRequest(sandbox_id="sbx-nope"),
                              metadata=sandbox_stack.metadata)  # fmt: skip
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_obfuscated_description_is_shown_and_recorded(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    code = "import os; print(open(os.environ['DATA_DIR'] + '/description.md').read(), end='')"
    sandbox = await sandbox_stack.create(
        stub, agent(code), description_variant=common_pb2.DESCRIPTION_VARIANT_OBFUSCATED
    )
    done = await sandbox_stack.wait_for(stub, sandbox.id)
    assert done.description_variant == common_pb2.DESCRIPTION_VARIANT_OBFUSCATED
    stdout = [
        e.text for e in await sandbox_stack.logs(stub, done.id) if e.stream == S.LOG_STREAM_STDOUT
    ]
    assert stdout == OBFUSCATED_DESCRIPTION.splitlines()


async def test_idempotency_key_returns_the_first_or_names_what_differs(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    command = agent("import time; time.sleep(0.2)")
    first = await stub.CreateSandbox(
        sandbox_stack.request(command, idempotency_key="k-1", labels={"a": "1"}),
        metadata=sandbox_stack.metadata,
    )
    again = await stub.CreateSandbox(
        sandbox_stack.request(command, idempotency_key="k-1", labels={"a": "1"}),
        metadata=sandbox_stack.metadata,
    )
    assert first.created and not again.created and again.sandbox.id == first.sandbox.id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await sandbox_stack.create(stub, command, idempotency_key="k-1", labels={"a": "2"},
                                   env={"X": "1"})  # fmt: skip
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    found = details(err.value)
    assert found["ErrorInfo"].metadata["sandbox_id"] == first.sandbox.id
    assert {v.field for v in found["BadRequest"].field_violations} == {"env", "labels"}
    await sandbox_stack.wait_for(stub, first.sandbox.id)


async def test_the_time_limit_is_enforced_and_the_submission_still_collected(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    code = (
        "import os, time\n"
        "open(os.environ['SUBMISSION_DIR'] + '/submission.csv', 'w').write('id,y\\n')\n"
        "print('written', flush=True)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    sandbox = await sandbox_stack.create(
        stub, agent(code), time_limit=duration_pb2.Duration(seconds=2)
    )
    done = await sandbox_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_TIMED_OUT
    assert 2 <= time.monotonic() - started < 20
    assert done.submission_collected and "time limit" in done.failure_message
    system = [
        e.text for e in await sandbox_stack.logs(stub, done.id) if e.stream == S.LOG_STREAM_SYSTEM
    ]
    assert any(t.startswith("stopping: time limit of 2s reached") for t in system)


async def test_stop_is_graceful_then_kills_and_ends_cancelled(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: print('TERM ignored', flush=True))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    sandbox = await sandbox_stack.create(stub, agent(code))
    await sandbox_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING})
    while not any(e.text == "ready" for e in await sandbox_stack.logs(stub, sandbox.id)):
        await asyncio.sleep(0.05)
    started = time.monotonic()
    reply = await stub.StopSandbox(
        sandbox_service_pb2.StopSandboxRequest(
            sandbox_id=sandbox.id, grace_period=duration_pb2.Duration(seconds=1), reason="enough"
        ),
        metadata=sandbox_stack.metadata,
    )
    assert time.monotonic() - started >= 1.0
    assert reply.sandbox.state == S.SANDBOX_STATE_CANCELLED
    assert reply.sandbox.exit_code == 137 and reply.sandbox.failure_message == "enough"
    texts = [e.text for e in await sandbox_stack.logs(stub, sandbox.id)]
    assert "TERM ignored" in texts and "stopping: enough; killing after 1s" in texts
    # Stopping again is a no-op on a finished sandbox.
    again = await stub.StopSandbox(
        sandbox_service_pb2.StopSandboxRequest(sandbox_id=sandbox.id),
        metadata=sandbox_stack.metadata,
    )
    assert again.sandbox.state == S.SANDBOX_STATE_CANCELLED


async def test_list_filters_by_labels_state_owner_competition_and_pages(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    ids = []
    for i in range(5):
        sandbox = await sandbox_stack.create(
            stub, agent("pass"), labels={"exp": "a" if i < 3 else "b", "i": str(i)},
            owner="alice" if i % 2 else "",
        )  # fmt: skip
        ids.append(sandbox.id)
    for sandbox_id in ids:
        await sandbox_stack.wait_for(stub, sandbox_id)

    async def listed(**fields) -> list[str]:
        reply = await stub.ListSandboxes(
            sandbox_service_pb2.ListSandboxesRequest(**fields), metadata=sandbox_stack.metadata
        )
        return [s.id for s in reply.sandboxes]

    assert await listed(labels={"exp": "a"}) == ids[2::-1]
    assert await listed(labels={"exp": "a", "i": "1"}) == [ids[1]]
    assert await listed(owner="alice") == [ids[3], ids[1]]
    assert await listed(states=[S.SANDBOX_STATE_SUCCEEDED], labels={"exp": "b"}) == ids[:2:-1]
    assert await listed(states=[S.SANDBOX_STATE_RUNNING]) == []
    assert await listed(competition_id="other") == []
    paged, token = [], ""
    while True:
        reply = await stub.ListSandboxes(
            sandbox_service_pb2.ListSandboxesRequest(page_size=2, page_token=token),
            metadata=sandbox_stack.metadata,
        )
        paged += [s.id for s in reply.sandboxes]
        if not (token := reply.next_page_token):
            break
    assert paged == ids[::-1]
    for bad in ({"page_token": "garbage"}, {"page_size": 5000}):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await listed(**bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def download(sandbox_stack, stub, sandbox_id: str) -> tuple[list, bytes]:
    replies = [
        r
        async for r in stub.DownloadArtifacts(
            sandbox_service_pb2.DownloadArtifactsRequest(sandbox_id=sandbox_id),
            metadata=sandbox_stack.metadata,
        )
    ]
    return replies, b"".join(r.data for r in replies)


async def test_artifacts_stream_as_a_verified_tar_without_links(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    code = WRITE_SUBMISSION + (
        "os.symlink('/etc/passwd', os.environ['CODE_DIR'] + '/passwd')\n"
        "open(os.environ['LOGS_DIR'] + '/big.bin', 'wb').write(os.urandom(3 << 20))\n"
    )
    sandbox = await sandbox_stack.create(stub, agent(code))
    await sandbox_stack.wait_for(stub, sandbox.id)
    replies, data = await download(sandbox_stack, stub, sandbox.id)
    assert len(replies) > 1  # chunked
    assert (
        replies[0].total_size_bytes == len(data)
        and replies[0].sha256 == hashlib.sha256(data).hexdigest()
    )
    assert all(not r.sha256 for r in replies[1:])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        assert {"submission/submission.csv", "code/solution.py", "logs/big.bin"} <= names
        assert "code/passwd" not in names
        assert tar.extractfile("submission/submission.csv").read().startswith(b"PassengerId")
    # Over the cap is RESOURCE_EXHAUSTED.
    await _server.stop(grace=0.5)
    _server, stub = await sandbox_stack.start(max_artifacts_bytes=1 << 20)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await download(sandbox_stack, stub, sandbox.id)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_validation_works_from_inside_a_local_sandbox(sandbox_stack):
    """validate_submission.sh through the sandbox's HTTP socket, to the real grader."""
    _server, stub = await sandbox_stack.start()
    code = (
        "import os, subprocess\n"
        "data, sub = os.environ['DATA_DIR'], os.environ['SUBMISSION_DIR']\n"
        "def check(path):\n"
        "    script = os.environ['VALIDATE_SCRIPT']\n"
        "    return subprocess.run(['bash', script, path], capture_output=True, text=True).stdout\n"
        "good = check(data + '/sample_submission.csv')\n"
        "open(sub + '/bad.csv', 'w').write('nope\\n1\\n')\n"
        "bad = check(sub + '/bad.csv')\n"
        "print('GOOD', good, flush=True)\n"
        "print('BAD', bad, flush=True)\n"
    )
    sandbox = await sandbox_stack.create(stub, agent(code))
    done = await sandbox_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    stdout = {e.text.split(" ", 1)[0]: e.text for e in await sandbox_stack.logs(stub, done.id)
              if e.stream == S.LOG_STREAM_STDOUT}  # fmt: skip
    assert "Submission is valid" in stdout["GOOD"], stdout
    assert "invalid" in stdout["BAD"].lower() and "score" not in stdout["BAD"].lower()


async def test_artifacts_whose_host_folder_is_gone_are_a_clear_refusal(sandbox_stack):
    # No object store: the host folder is the only copy. Removed (by hand, or a disk lost),
    # DownloadArtifacts says so, as FAILED_PRECONDITION naming no server path.
    _server, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(stub, agent(WRITE_SUBMISSION))
    await sandbox_stack.wait_for(stub, sandbox.id)
    assert (await download(sandbox_stack, stub, sandbox.id))[1]
    root = sandbox_stack.sandbox_settings.work_dir / "sandboxes" / sandbox.id
    remove_tree(root)
    assert not root.exists()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await download(sandbox_stack, stub, sandbox.id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(err.value)["ErrorInfo"].reason == "ARTIFACTS_GONE"
    assert "/" not in (err.value.details() or "")
