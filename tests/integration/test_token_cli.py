"""`mleb token issue` gives lab tokens an expiry; `mleb token revoke` revokes through a real
registry, after which the registry refuses the token."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import grpc
import jwt
import pytest
from mleb.registry.v1 import registry_service_pb2 as rpb
from mleb.registry.v1 import registry_service_pb2_grpc
from typer.testing import CliRunner

from services.cli.main import app
from services.registry.app import registry_service
from tests.conftest import TEST_AUTH_SECRET, bearer


def _issue(*args: str) -> str:
    result = CliRunner().invoke(
        app, ["token", "issue", *args], env={"MLEB_AUTH_SECRET": TEST_AUTH_SECRET}
    )
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_lab_tokens_expire_by_default():
    claims = jwt.decode(
        _issue("--role", "lab", "--subject", "lab-a"), options={"verify_signature": False}
    )
    assert 6 * 24 * 3600 < claims["exp"] - time.time() <= 7 * 24 * 3600
    refused = CliRunner().invoke(
        app,
        ["token", "issue", "--role", "lab", "--no-expiry"],
        env={"MLEB_AUTH_SECRET": TEST_AUTH_SECRET},
    )
    assert refused.exit_code == 2
    service = _issue("--role", "service", "--no-expiry")
    assert "exp" not in jwt.decode(service, options={"verify_signature": False})


async def test_mleb_token_revoke_refuses_the_token_at_the_registry(serve, settings):
    settings = dataclasses.replace(settings, revocation_cache_s=0.1)
    registry = await serve([registry_service(settings)], settings)
    token = _issue("--role", "lab", "--subject", "lab-a")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{registry.port}") as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        await stub.ListSplits(rpb.ListSplitsRequest(), metadata=bearer(token))
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["token", "revoke", token, "--reason", "leaked"],
            env={
                "MLEB_AUTH_SECRET": TEST_AUTH_SECRET,
                "MLEB_REGISTRY_ADDR": f"127.0.0.1:{registry.port}",
            },
        )
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("revoked token ")
        await asyncio.sleep(0.3)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListSplits(rpb.ListSplitsRequest(), metadata=bearer(token))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (err.value.details() or "")
