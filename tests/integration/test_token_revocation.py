"""Token revocation through real registry, grader and sandbox servers (port 0).

A revoked lab token is refused everywhere within the cache lifetime; a sandbox's token
stops working once the sandbox is terminal; a server that cannot refresh the list refuses
lab and sandbox callers (fails closed).
"""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.grader.v1 import grader_service_pb2 as gpb
from mleb.grader.v1 import grader_service_pb2_grpc
from mleb.registry.v1 import registry_service_pb2 as rpb
from mleb.registry.v1 import registry_service_pb2_grpc

from services.common.auth import Role
from services.grader.app import grader_service
from services.registry.app import registry_service
from tests.conftest import bearer
from tests.fixtures.grading_stack import COMPETITION, submission_csv
from tests.fixtures.sandbox_stack import agent

FAST = {"revocation_cache_s": 0.1, "revocation_max_stale_s": 0.5}


def _reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


def _validation():
    return iter(
        [
            gpb.ValidateSubmissionRequest(header=gpb.SubmissionHeader(competition_id=COMPETITION)),
            gpb.ValidateSubmissionRequest(chunk=submission_csv()),
        ]
    )


@dataclasses.dataclass
class Servers:
    registry: object
    grader: grader_service_pb2_grpc.GraderServiceStub
    registry_server: object


@pytest.fixture
async def servers(serve, imported_settings):
    settings = dataclasses.replace(imported_settings, **FAST)
    registry = await serve([registry_service(settings)], settings)
    settings = dataclasses.replace(settings, registry_addr=f"127.0.0.1:{registry.port}")
    grader = await serve([grader_service(settings)], settings)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in (registry, grader)]
    yield Servers(
        registry_service_pb2_grpc.RegistryServiceStub(channels[0]),
        grader_service_pb2_grpc.GraderServiceStub(channels[1]),
        registry,
    )
    for channel in channels:
        await channel.close()


async def test_a_revoked_lab_token_is_refused_by_grader_and_registry(servers, authority):
    token = authority.issue(Role.LAB, "lab-a", ttl_s=3600)
    assert (await servers.grader.ValidateSubmission(_validation(), metadata=bearer(token))).valid
    # Another lab may not revoke it.
    other = authority.issue(Role.LAB, "lab-b", ttl_s=3600)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await servers.registry.RevokeToken(
            rpb.RevokeTokenRequest(token=token), metadata=bearer(other)
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Its own lab may (a leaked token, say).
    reply = await servers.registry.RevokeToken(
        rpb.RevokeTokenRequest(token=token, reason="leaked"), metadata=bearer(token)
    )
    assert reply.revoked.token_id and reply.revoked.HasField("expires_at")
    await asyncio.sleep(0.3)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await servers.grader.ValidateSubmission(_validation(), metadata=bearer(token))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _reason(err.value) == "TOKEN_REVOKED"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await servers.registry.ListCompetitions(
            rpb.ListCompetitionsRequest(), metadata=bearer(token)
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Other tokens are untouched.
    assert (await servers.grader.ValidateSubmission(_validation(), metadata=bearer(other))).valid


async def test_only_the_service_role_lists_or_revokes_by_id(servers, authority, service_token):
    lab = bearer(authority.issue(Role.LAB, "lab-a", ttl_s=3600))
    for call, request in (
        (servers.registry.ListRevokedTokens, rpb.ListRevokedTokensRequest()),
        (servers.registry.RevokeToken, rpb.RevokeTokenRequest(sandbox_id="sbx-1")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request, metadata=lab)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await servers.registry.RevokeToken(
        rpb.RevokeTokenRequest(sandbox_id="sbx-1"), metadata=bearer(service_token)
    )
    listed = await servers.registry.ListRevokedTokens(
        rpb.ListRevokedTokensRequest(), metadata=bearer(service_token)
    )
    assert [r.sandbox_id for r in listed.revoked] == ["sbx-1"]
    sandbox = authority.issue(Role.SANDBOX, "s", sandbox_id="sbx-1", competition_id=COMPETITION)
    await asyncio.sleep(0.3)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await servers.grader.ValidateSubmission(_validation(), metadata=bearer(sandbox))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _reason(err.value) == "SANDBOX_ENDED"


async def test_a_grader_that_cannot_refresh_the_list_fails_closed(servers, authority):
    token = bearer(authority.issue(Role.LAB, "lab-a", ttl_s=3600))
    assert (await servers.grader.ValidateSubmission(_validation(), metadata=token)).valid
    await servers.registry_server.stop(grace=0.1)
    await asyncio.sleep(FAST["revocation_max_stale_s"] + 0.2)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await servers.grader.ValidateSubmission(_validation(), metadata=token)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _reason(err.value) == "REVOCATION_LIST_UNAVAILABLE"


async def test_a_finished_sandboxs_token_no_longer_validates(sandbox_stack):
    _server, stub = await sandbox_stack.start()
    # The agent copies its token out (reversed, past the log redaction), as a hostile one would.
    code = "import os; print('TOKEN=' + os.environ['MLEB_SANDBOX_TOKEN'][::-1], flush=True)"
    created = await sandbox_stack.create(stub, agent(code))
    done = await sandbox_stack.wait_for(stub, created.id)
    lines = [e.text for e in await sandbox_stack.logs(stub, created.id)]
    token = next(line.strip().removeprefix("TOKEN=")[::-1] for line in lines if "TOKEN=" in line)
    grader_addr = sandbox_stack.settings.grader_addr
    assert done.id == created.id
    async with grpc.aio.insecure_channel(grader_addr) as channel:
        grader = grader_service_pb2_grpc.GraderServiceStub(channel)
        # Revocation lands, and graders refresh their copy, within seconds.
        reason = ""
        for _ in range(100):
            try:
                await grader.ValidateSubmission(_validation(), metadata=bearer(token))
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
                reason = _reason(error)
                break
            await asyncio.sleep(0.2)
    assert reason == "SANDBOX_ENDED"
