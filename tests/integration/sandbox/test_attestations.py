"""Sandbox attestations through real servers (local backend): every finished sandbox carries a
signed statement of what ran, even when many finish at once, and none when the audit chain
cannot take its records, in which case it says why."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib

from mleb.evidence.dsse import SANDBOX_PREDICATE, Envelope, subject_digests
from mleb.evidence.keys import keyring
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.registry.app import registry_service
from services.sandbox.lifecycle import evidence
from tests.fixtures.sandbox_stack import agent

WRITE = (
    "import os, sys\n"
    "rows = 'PassengerId,Transported\\n' + ''.join(f'{i:04d}_01,True\\n' for i in range(5))\n"
    "open(os.path.join(os.environ['SUBMISSION_DIR'], 'submission.csv'), 'w').write(rows)\n"
    "open(os.path.join(os.environ['LOGS_DIR'], 'note.txt'), 'w').write(sys.argv[-1])\n"
)


async def _keys(stub, metadata):
    listed = await stub.ListPublicKeys(
        sandbox_service_pb2.ListPublicKeysRequest(), metadata=metadata
    )
    return keyring((k.keyid, k.pem) for k in listed.keys)


async def _download(stub, sandbox_id: str, metadata) -> tuple[bytes, str]:
    request = sandbox_service_pb2.DownloadArtifactsRequest(sandbox_id=sandbox_id)
    parts = [part async for part in stub.DownloadArtifacts(request, metadata=metadata)]
    return b"".join(p.data for p in parts), parts[0].sha256


async def test_sandboxes_finishing_at_once_are_each_attested(sandbox_stack) -> None:
    _server, stub = await sandbox_stack.start()
    md = sandbox_stack.metadata
    # More at once than the node builds archives at once (4): each still gets its digest.
    created = await asyncio.gather(
        *(sandbox_stack.create(stub, [*agent(WRITE), f"run-{i}"]) for i in range(8))
    )
    keys = await _keys(stub, md)
    for sandbox in created:
        done = await sandbox_stack.wait_for(stub, sandbox.id)
        assert done.state == sandbox_pb2.SANDBOX_STATE_SUCCEEDED, done.failure_message
        assert done.attestation and not done.attestation_error
        envelope = Envelope.from_json(done.attestation)
        assert envelope.verify(keys)
        statement = envelope.statement()
        assert statement["predicateType"] == SANDBOX_PREDICATE
        archive, served_sha = await _download(stub, done.id, md)
        subjects = subject_digests(statement)
        # The archive attested is byte for byte the one DownloadArtifacts serves.
        assert subjects["artifacts.tar"] == served_sha == hashlib.sha256(archive).hexdigest()
        assert len(subjects["submission.csv"]) == 64
        predicate = statement["predicate"]
        assert predicate["sandbox"]["id"] == done.id and predicate["sandbox"]["tenant"]
        assert predicate["competition"]["id"] == done.competition_id
        assert len(predicate["competition"]["bundle_digest"]) == 64
        assert predicate["outcome"] == {
            "state": "SUCCEEDED", "failure_class": "", "failure_reason": "", "exit_code": 0,
            "submission_collected": True,
        }  # fmt: skip
        assert predicate["audit"]["records"] >= 3  # created, launching, finished
        assert predicate["usage"]["gpu_utilization_percent"] is None  # no GPU leased
        assert predicate["resources"]["granted"]["gpus"] == []


async def test_without_the_audit_chain_a_sandbox_ends_unattested_and_says_why(
    sandbox_stack, serve, open_tmp, monkeypatch
) -> None:
    # A registry of its own, on the same database, that the test can take away.
    registry = await serve([registry_service(sandbox_stack.settings)], sandbox_stack.settings)
    own = dataclasses.replace(
        sandbox_stack,
        settings=dataclasses.replace(
            sandbox_stack.settings, registry_addr=f"127.0.0.1:{registry.port}"
        ),
    )
    monkeypatch.setattr(evidence, "ATTEST_PATIENCE_S", 2.0)
    _server, stub = await own.start()
    release = open_tmp / "release"
    waits = f"import os, time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.05)\n"
    sandbox = await own.create(stub, agent(waits + WRITE))
    await own.wait_for(stub, sandbox.id, {sandbox_pb2.SANDBOX_STATE_RUNNING})
    await registry.stop(0)
    release.write_text("go")
    done = await own.wait_for(stub, sandbox.id, timeout=60)
    # The run itself is not lost: only its attestation is, and the record says so.
    assert done.state == sandbox_pb2.SANDBOX_STATE_SUCCEEDED
    assert done.attestation == "" and "not attested" in done.attestation_error
