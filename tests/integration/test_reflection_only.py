"""The API through server reflection alone, as grpcurl uses it: services, methods and
message types all come from the running server, requests are built from JSON and replies
decoded to JSON. No generated mleb stub is imported here."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.conftest import bearer
from tests.fixtures.grading_stack import COMPETITION, submission_csv

REGISTRY = "mleb.registry.v1.RegistryService"
GRADER = "mleb.grader.v1.GraderService"


class ReflectedApi:
    """One server's API, known only through its reflection service."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.database = ProtoReflectionDescriptorDatabase(channel)
        # A pool of its own, fed only by reflection: never the default pool the stubs fill.
        self.pool = descriptor_pool.DescriptorPool(self.database)

    def services(self) -> set[str]:
        return set(self.database.get_services())

    def call(self, method_name: str, requests: list[dict[str, Any]], token: str) -> dict:
        """Calls `package.Service.Method` with requests given as proto3 JSON, like `grpcurl -d`."""
        service_name, _, short_name = method_name.rpartition(".")
        # A pool backed by a database resolves services on demand, but not methods.
        method = self.pool.FindServiceByName(service_name).methods_by_name[short_name]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        assert request_class.DESCRIPTOR.file.pool is self.pool
        messages = [json_format.ParseDict(r, request_class()) for r in requests]
        path = f"/{method.containing_service.full_name}/{method.name}"
        kind = self.channel.stream_unary if method.client_streaming else self.channel.unary_unary
        rpc = kind(
            path,
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        payload = iter(messages) if method.client_streaming else messages[0]
        reply = rpc(payload, metadata=bearer(token), timeout=30)
        return json_format.MessageToDict(reply, always_print_fields_with_no_presence=True)


@contextmanager
def reflected(port: int) -> Iterator[ReflectedApi]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield ReflectedApi(channel)


def _upload(competition_id: str, data: bytes) -> list[dict[str, Any]]:
    """A client-streaming submission in JSON: the header, then the bytes as base64."""
    return [
        {"header": {"competitionId": competition_id, "submissionPath": "submission.csv"}},
        {"chunk": base64.b64encode(data).decode()},
    ]


# The servers run in this event loop; reflection's client is blocking, so it runs in a thread.


@pytest.mark.parametrize(
    ("server", "service"), [("registry_port", REGISTRY), ("grader_port", GRADER)]
)
async def test_reflection_lists_each_servers_services(stack, server, service):
    def discover() -> set[str]:
        with reflected(getattr(stack, server)) as api:
            return api.services()

    assert await asyncio.to_thread(discover) == {
        service,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_list_competitions_through_reflection(stack, lab_token):
    def list_competitions() -> dict:
        with reflected(stack.registry_port) as api:
            request = {"split": "lite", "view": "COMPETITION_VIEW_FULL"}
            return api.call(f"{REGISTRY}.ListCompetitions", [request], lab_token)

    reply = await asyncio.to_thread(list_competitions)
    assert reply["totalSize"] == 1
    (competition,) = reply["competitions"]
    assert competition["id"] == COMPETITION
    assert competition["dataStatus"] == "DATA_STATUS_PREPARED"
    assert "sample_submission.csv" in {f["path"] for f in competition["publicFiles"]}


@pytest.mark.parametrize(
    ("submission", "expected"),
    [
        (submission_csv(), {"valid": True, "message": "Submission is valid.", "reason": ""}),
        (b"PassengerId\nx\n", {"valid": False}),
    ],
    ids=["good", "bad"],
)
async def test_validate_submission_streams_through_reflection(
    stack, lab_token, submission, expected
):
    def validate() -> dict:
        with reflected(stack.grader_port) as api:
            return api.call(
                f"{GRADER}.ValidateSubmission", _upload(COMPETITION, submission), lab_token
            )

    reply = await asyncio.to_thread(validate)
    assert set(reply) == {"valid", "message", "reason"}, "validation never returns a score"
    assert reply.items() >= expected.items()
    if not reply["valid"]:
        assert reply["reason"] and reply["message"] == (
            "Submission invalid! The attempt to grade the submission has resulted in the "
            f"following error message:\n{reply['reason']}"
        )


async def test_errors_reach_a_reflection_client_as_status_codes(stack, lab_token):
    def validate_unknown() -> grpc.RpcError:
        with reflected(stack.grader_port) as api, pytest.raises(grpc.RpcError) as error:
            api.call(
                f"{GRADER}.ValidateSubmission", _upload("no-such-competition", b"x"), lab_token
            )
        return error.value

    error = await asyncio.to_thread(validate_unknown)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-competition" in error.details()
