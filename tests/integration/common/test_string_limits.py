"""Over-long and NUL-bearing strings are refused at the door on SQLite and PostgreSQL alike
(issue 16, item 1). On PostgreSQL an over-long owner or image once came back INTERNAL
(StringDataRightTruncation), and a NUL in an id made the driver raise; on SQLite the same
insert succeeded. Through real servers on port 0 over both databases.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from mleb.grader.v1 import grader_service_pb2 as G
from mleb.grader.v1 import grader_service_pb2_grpc
from mleb.registry.v1 import registry_service_pb2 as R
from mleb.registry.v1 import registry_service_pb2_grpc
from mleb.sandbox.v1 import sandbox_pb2
from mleb.sandbox.v1 import sandbox_service_pb2 as S

from services.common.settings import Settings
from tests.conftest import TEST_AUTH_SECRET, bearer
from tests.fixtures.sandbox_stack import agent
from tests.integration.sandbox.test_create_refusals import violation


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The shared fixture's settings, on each database in turn."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        auth_secret=TEST_AUTH_SECRET,
        shutdown_grace_s=1.0,
    )


LONG_GPU_UUID = sandbox_pb2.Resources(gpu_uuids=["g" * 200])
SANDBOX_CASES = [
    ("CreateSandbox", dict(owner="o" * 300), "owner"),
    ("CreateSandbox", dict(image="a" * 600), "image"),
    ("CreateSandbox", dict(idempotency_key="k\x00"), "idempotency_key"),
    ("CreateSandbox", dict(resources=LONG_GPU_UUID), "resources.gpu_uuids[0]"),
    ("GetSandbox", dict(sandbox_id="s" * 41), "sandbox_id"),
    ("GetSandbox", dict(sandbox_id="sbx\x00"), "sandbox_id"),
    ("ListSandboxes", dict(owner="o" * 300), "owner"),
    ("ListSandboxes", dict(labels={"k" * 200: "v"}), "labels"),
    ("ListSandboxes", dict(page_token="\x00"), "page_token"),
    ("StopSandbox", dict(sandbox_id="sbx-1", reason="r" * 2000), "reason"),
]


@pytest.mark.parametrize(("method", "fields", "field"), SANDBOX_CASES)
async def test_sandbox_strings(sandbox_stack, method, fields, field) -> None:
    _server, stub = await sandbox_stack.start()
    if method == "CreateSandbox":
        call = stub.CreateSandbox(
            sandbox_stack.request(agent("pass"), **fields), metadata=sandbox_stack.metadata
        )
    else:
        request = getattr(S, f"{method}Request")(**fields)
        call = getattr(stub, method)(request, metadata=sandbox_stack.metadata)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert violation(err.value).field == field


async def test_registry_and_grader_strings(stack, lab_token) -> None:
    metadata = bearer(lab_token)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{stack.registry_port}") as registry_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{stack.grader_port}") as grader_channel,
    ):
        registry = registry_service_pb2_grpc.RegistryServiceStub(registry_channel)
        grader = grader_service_pb2_grpc.GraderServiceStub(grader_channel)
        header = G.SubmissionHeader(competition_id="spaceship-titanic", submission_path="p\x00")
        calls = [
            (
                registry.GetCompetition(
                    R.GetCompetitionRequest(competition_id="c" * 200), metadata=metadata
                ),
                "competition_id",
            ),
            (
                registry.ListCompetitions(
                    R.ListCompetitionsRequest(category="\x00"), metadata=metadata
                ),
                "category",
            ),
            (
                grader.RankScore(G.RankScoreRequest(competition_id="c\x00"), metadata=metadata),
                "competition_id",
            ),
            (
                grader.ValidateSubmission(
                    iter([G.ValidateSubmissionRequest(header=header)]), metadata=metadata
                ),
                "header.submission_path",
            ),
        ]
        for call, field in calls:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
            assert violation(err.value).field == field
        paths = R.DownloadPublicDataRequest(competition_id="spaceship-titanic", paths=["p" * 2000])
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in registry.DownloadPublicData(paths, metadata=metadata):
                pass
        assert violation(err.value).field == "paths[0]"
