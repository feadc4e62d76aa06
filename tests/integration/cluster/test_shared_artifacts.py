"""Artifacts through real gRPC servers (local backend) with an object store: one sandbox
service instance runs a sandbox, and a second one sharing the database and the store, on
another node, serves DownloadArtifacts with the same bytes and the sha256 the attestation
names; the finished sandbox's host folder is gone by then, so only the store can answer."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from pathlib import Path

import grpc
import pytest
from mleb.evidence.dsse import Envelope, subject_digests
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2
from typer.testing import CliRunner

from services.cli.sandbox_cmds import sandboxes_app
from services.common.errors import NotFoundError
from services.sandbox.node.artifacts import remove_tree
from services.sandbox.node.stored_artifacts import artifacts_key
from services.storage.config import StoreSettings, open_store
from tests.fixtures.object_stores import new_bucket, s3_client, s3_settings
from tests.fixtures.sandbox_stack import agent

WRITE = (
    "import os\n"
    "rows = 'PassengerId,Transported\\n' + ''.join(f'{i:04d}_01,True\\n' for i in range(5))\n"
    "open(os.path.join(os.environ['SUBMISSION_DIR'], 'submission.csv'), 'w').write(rows)\n"
    "open(os.path.join(os.environ['LOGS_DIR'], 'big.bin'), 'wb').write(os.urandom(9 << 20))\n"
)


async def download(stub, sandbox_id: str, metadata) -> tuple[bytes, str, int]:
    request = sandbox_service_pb2.DownloadArtifactsRequest(sandbox_id=sandbox_id)
    parts = [part async for part in stub.DownloadArtifacts(request, metadata=metadata)]
    return b"".join(p.data for p in parts), parts[0].sha256, parts[0].total_size_bytes


@pytest.fixture(params=["s3", "file"])
def object_store(request, tmp_path: Path) -> tuple[StoreSettings, object]:
    """The store settings, and a function that overwrites a stored object behind it."""
    if request.param == "file":
        root = tmp_path / "objects"

        def corrupt_file(key: str, data: bytes) -> None:
            path = root / key
            path.write_bytes(path.read_bytes()[: -len(data)] + data)

        return StoreSettings(url=f"file://{root}"), corrupt_file
    cluster = request.getfixturevalue("s3_cluster")
    bucket = new_bucket(cluster)

    def corrupt_s3(key: str, data: bytes) -> None:
        client = s3_client(cluster)
        name = f"mleb/{key}"
        head = client.get_object(Bucket=bucket, Key=name)
        body = head["Body"].read()
        client.put_object(
            Bucket=bucket, Key=name, Body=body[: -len(data)] + data, Metadata=head["Metadata"]
        )

    return s3_settings(cluster, f"s3://{bucket}/mleb"), corrupt_s3


async def test_a_second_instance_serves_the_stored_archive(sandbox_stack, object_store) -> None:
    settings, corrupt = object_store
    md = sandbox_stack.metadata
    _first_server, first = await sandbox_stack.start(object_store=settings)
    sandbox = await sandbox_stack.create(first, agent(WRITE))
    done = await sandbox_stack.wait_for(first, sandbox.id)
    assert done.state == sandbox_pb2.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert done.attestation, done.attestation_error
    attested = subject_digests(Envelope.from_json(done.attestation).statement())["artifacts.tar"]

    # The host folder goes: the outputs now live only in the store.
    remove_tree(sandbox_stack.sandbox_settings.work_dir / "sandboxes" / sandbox.id)
    _second_server, second = await sandbox_stack.start(
        object_store=settings, node="another-node", instance_id="second-instance"
    )
    served, sha256, size = await download(second, sandbox.id, md)
    assert sha256 == attested == hashlib.sha256(served).hexdigest()
    assert size == len(served) > 9 << 20  # over one multipart part
    with tarfile.open(fileobj=io.BytesIO(served)) as tar:
        names = tar.getnames()
        submission = tar.extractfile("submission/submission.csv")
        assert submission is not None and submission.read().startswith(b"PassengerId,")
    assert "logs/big.bin" in names
    again, again_sha, _ = await download(first, sandbox.id, md)
    assert (again, again_sha) == (served, sha256)

    # Changed behind the service: refused as DATA_LOSS, and never served whole.
    # (A tar ends in zero blocks: these bytes differ from them.)
    corrupt(artifacts_key(sandbox.id), b"\xff" * 512)
    request = sandbox_service_pb2.DownloadArtifactsRequest(sandbox_id=sandbox.id)
    received = 0
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for part in second.DownloadArtifacts(request, metadata=md):
            received += len(part.data)
    assert raised.value.code() == grpc.StatusCode.DATA_LOSS
    assert received < len(served)
    assert "/" + "tmp" not in (raised.value.details() or "")


async def test_a_running_sandbox_on_another_node_is_refused_clearly(
    sandbox_stack, object_store
) -> None:
    settings, _ = object_store
    md = sandbox_stack.metadata
    _first_server, first = await sandbox_stack.start(object_store=settings)
    sandbox = await sandbox_stack.create(first, agent("import time; time.sleep(60)"))
    await sandbox_stack.wait_for(first, sandbox.id, {sandbox_pb2.SANDBOX_STATE_RUNNING})
    remove_tree_later = sandbox_stack.sandbox_settings.work_dir / "sandboxes" / sandbox.id
    other_work = Path(str(sandbox_stack.sandbox_settings.work_dir) + "-other")
    _second_server, second = await sandbox_stack.start(
        object_store=settings, node="another-node", instance_id="second", work_dir=other_work
    )
    # The running sandbox's folder is on the first node only: hide it from the second.
    hidden = remove_tree_later.with_name(sandbox.id + ".elsewhere")
    remove_tree_later.rename(hidden)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await download(second, sandbox.id, md)
    finally:
        hidden.rename(remove_tree_later)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "another node" in (raised.value.details() or "")
    await first.StopSandbox(
        sandbox_service_pb2.StopSandboxRequest(sandbox_id=sandbox.id), metadata=md
    )


async def test_retention_removes_the_stored_archive(sandbox_stack, object_store) -> None:
    """`mleb sandboxes cleanup` with MLEB_OBJECT_STORE set deletes the stored archive too;
    DownloadArtifacts then says the artifacts were deleted."""
    settings, _ = object_store
    md = sandbox_stack.metadata
    _server, stub = await sandbox_stack.start(object_store=settings)
    sandbox = await sandbox_stack.create(stub, agent(WRITE))
    await sandbox_stack.wait_for(stub, sandbox.id)
    key = artifacts_key(sandbox.id)
    open_store(settings).open(key).close()  # stored at the end, before any download
    env = {
        "MLEB_DATABASE_URL": sandbox_stack.settings.database_url,
        "MLEB_OBJECT_STORE": settings.url,
        "MLEB_S3_ENDPOINT_URL": settings.endpoint_url,
        "MLEB_S3_REGION": settings.region,
        "MLEB_S3_ACCESS_KEY_ID": settings.access_key_id,
        "MLEB_S3_SECRET_ACCESS_KEY": settings.secret_access_key,
    }
    result = await asyncio.to_thread(
        CliRunner().invoke, sandboxes_app, ["cleanup", "--older-than", "0"], env=env
    )
    assert result.exit_code == 0, result.output
    assert sandbox.id in result.output
    with pytest.raises(NotFoundError):
        open_store(settings).open(key)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await download(stub, sandbox.id, md)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
