"""Walks every RPC of every service with every kind of caller, through real servers."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from google.protobuf import message_factory
from mleb.grader.v1 import grader_service_pb2
from mleb.registry.v1 import registry_service_pb2
from mleb.sandbox.v1 import sandbox_service_pb2

from services.common.auth import Role
from services.grader.app import grader_service
from services.grader.servicer import RPC_ROLES as GRADER_ROLES
from services.registry.app import registry_service
from services.registry.servicer import RPC_ROLES as REGISTRY_ROLES
from services.sandbox.app import sandbox_service
from services.sandbox.config import SandboxSettings
from services.sandbox.servicer import RPC_ROLES as SANDBOX_ROLES
from tests.conftest import bearer

OWN, OTHER = "comp-a", "comp-b"
AUTH_CODES = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}

SERVICES = {
    "registry": (
        registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"],
        REGISTRY_ROLES,
    ),
    "grader": (grader_service_pb2.DESCRIPTOR.services_by_name["GraderService"], GRADER_ROLES),
    "sandbox": (
        sandbox_service_pb2.DESCRIPTOR.services_by_name["SandboxService"],
        SANDBOX_ROLES,
    ),
}


def _request(method, competition_id: str):
    message = message_factory.GetMessageClass(method.input_type)()
    fields = message.DESCRIPTOR.fields_by_name
    if "competition_id" in fields:
        message.competition_id = competition_id
    if "header" in fields:
        message.header.competition_id = competition_id
    return message


async def _call(channel: grpc.aio.Channel, service, method, request, metadata):
    path = f"/{service.full_name}/{method.name}"
    response_class = message_factory.GetMessageClass(method.output_type)
    kwargs = dict(
        request_serializer=type(request).SerializeToString,
        response_deserializer=response_class.FromString,
    )
    if method.client_streaming:
        factory = channel.stream_stream if method.server_streaming else channel.stream_unary
        call = factory(path, **kwargs)(iter([request]), metadata=metadata, timeout=10)
    else:
        factory = channel.unary_stream if method.server_streaming else channel.unary_unary
        call = factory(path, **kwargs)(request, metadata=metadata, timeout=10)
    try:
        if method.server_streaming:
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture
async def stack(serve, settings):
    registry = await serve([registry_service(settings)], settings)
    settings = replace(settings, registry_addr=f"127.0.0.1:{registry.port}")
    grader = await serve([grader_service(settings)], settings)
    settings = replace(settings, grader_addr=f"127.0.0.1:{grader.port}")
    local = replace(SandboxSettings.from_env(settings), backend="local")
    sandbox = await serve([sandbox_service(settings, local)], settings)
    return {"registry": registry, "grader": grader, "sandbox": sandbox}


async def test_every_rpc_declares_its_roles():
    for descriptor, roles in SERVICES.values():
        assert set(descriptor.methods_by_name) == set(roles)


async def test_role_matrix(stack, authority):
    tokens = {
        "none": None,
        "garbage": "not.a.token",
        "expired": authority.issue(Role.LAB, "old", ttl_s=-10),
        Role.SERVICE: authority.issue(Role.SERVICE, "svc"),
        Role.LAB: authority.issue(Role.LAB, "lab"),
        Role.SANDBOX: authority.issue(Role.SANDBOX, "agent", sandbox_id="s", competition_id=OWN),
    }
    checked = 0
    for name, (descriptor, roles) in SERVICES.items():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{stack[name].port}") as channel:
            for method in descriptor.methods:
                for who, token in tokens.items():
                    metadata = bearer(token) if token else ()
                    code = await _call(channel, descriptor, method, _request(method, OWN), metadata)
                    if not isinstance(who, Role):
                        expected = {grpc.StatusCode.UNAUTHENTICATED}
                        assert code in expected, (method.name, who, code)
                    elif who in roles[method.name]:
                        assert code not in AUTH_CODES, (method.name, who, code)
                    else:
                        assert code == grpc.StatusCode.PERMISSION_DENIED, (method.name, who, code)
                    checked += 1
                if Role.SANDBOX in roles[method.name]:
                    # A sandbox token reaches only its own competition.
                    request = _request(method, OTHER)
                    code = await _call(
                        channel, descriptor, method, request, bearer(tokens[Role.SANDBOX])
                    )
                    assert code == grpc.StatusCode.PERMISSION_DENIED, (method.name, code)
    assert checked == 6 * sum(len(d.methods) for d, _ in SERVICES.values())
