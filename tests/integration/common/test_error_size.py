"""An error that echoes a long value still arrives as itself (issue 16, item 7).

Status and details travel in trailers, which gRPC caps at a few KiB; an echoed value once
turned a clear INVALID_ARGUMENT into RESOURCE_EXHAUSTED on metadata size. Real servers.
"""

from __future__ import annotations

import grpc
import pytest
from mleb.registry.v1 import registry_service_pb2 as R
from mleb.registry.v1 import registry_service_pb2_grpc

from services.common.errors import FieldViolation, InvalidArgumentError
from services.common.interceptors import status_for
from tests.conftest import bearer
from tests.integration.sandbox.test_create_refusals import violation

# Within the path's 1024-character limit, but each U+202E is quoted back as six characters.
ECHOED = "\u202e" * 1000 + "\\"


async def test_a_long_echoed_value_keeps_its_status(stack, lab_token) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.registry_port}") as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        request = R.DownloadPublicDataRequest(competition_id="spaceship-titanic", paths=[ECHOED])
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.DownloadPublicData(request, metadata=bearer(lab_token)):
                pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert violation(err.value).field == "paths[0]"
    assert len(err.value.details().encode()) <= 1024


def test_every_part_of_a_status_has_a_budget() -> None:
    huge = "é" * 100_000
    error = InvalidArgumentError(
        huge,
        metadata={"value": huge},
        violations=[FieldViolation(huge, huge) for _ in range(1000)],
    )
    status = status_for(error, "request-id")
    assert sum(len(key) + len(value) for key, value in status.trailing_metadata) < 6 * 1024
