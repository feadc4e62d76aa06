"""Every string field of every request has a limit, the docs list each, and checks hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from mleb.grader.v1 import grader_service_pb2
from mleb.registry.v1 import registry_service_pb2
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.common.errors import InvalidArgumentError
from services.common.field_limits import LIMITS, check_request

DOCS = Path(__file__).parents[3] / "docs" / "limits.md"
SERVICES = [
    registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"],
    grader_service_pb2.DESCRIPTOR.services_by_name["GraderService"],
    sandbox_service_pb2.DESCRIPTOR.services_by_name["SandboxService"],
]


def _strings(descriptor: Descriptor, seen: set[str]) -> set[str]:
    if descriptor.full_name in seen:
        return set()
    seen.add(descriptor.full_name)
    found = set()
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            found.add(field.full_name)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            found |= _strings(field.message_type, seen)
    return found


def request_strings() -> set[str]:
    seen: set[str] = set()
    return {
        name
        for service in SERVICES
        for method in service.methods
        for name in _strings(method.input_type, seen)
    }


def test_every_request_string_has_a_limit_and_no_limit_is_stale() -> None:
    strings = request_strings()
    assert strings - LIMITS.keys() == set(), "add these fields to services/common/field_limits"
    assert LIMITS.keys() - strings == set(), "these limits name no request field"


def test_the_docs_table_is_the_code_table() -> None:
    rows = re.findall(r"^\| `(mleb\.[\w.]+)` \| ([^|]+) \| ([^|]*) \|", DOCS.read_text(), re.M)
    documented = {name: (chars.strip(), items.strip()) for name, chars, items in rows}
    expected = {
        name: (str(limit.chars) if limit.chars is not None else "operator's budget",
               str(limit.items) if limit.items is not None else "")
        for name, limit in LIMITS.items()
    }  # fmt: skip
    assert documented == expected


def refused(message) -> str:
    with pytest.raises(InvalidArgumentError) as err:
        check_request(message)
    (violation,) = err.value.violations
    return f"{violation.field}: {violation.description}"


def test_paths_name_nested_repeated_and_map_fields() -> None:
    S = sandbox_service_pb2
    resources = sandbox_pb2.Resources(gpu_uuids=["GPU-a", "g" * 129])
    assert refused(S.CreateSandboxRequest(resources=resources)) == (
        "resources.gpu_uuids[1]: longer than 128 characters"
    )
    assert refused(S.CreateSandboxRequest(labels={"team": "a\x00b"})) == (
        "labels.team: contains a NUL character"
    )
    assert refused(S.CreateSandboxRequest(labels={"k" * 129: "v"})) == (
        "labels: longer than 128 characters"
    )
    many = {f"k{i}": "v" for i in range(65)}
    assert refused(S.ListSandboxesRequest(labels=many)) == "labels: more than 64 entries"
    header = grader_service_pb2.SubmissionHeader(competition_id="c", submission_path="p" * 4097)
    assert refused(grader_service_pb2.ValidateSubmissionRequest(header=header)) == (
        "header.submission_path: longer than 4096 characters"
    )


def test_operator_budgets_are_left_to_the_service_but_nul_is_not() -> None:
    S = sandbox_service_pb2
    check_request(S.CreateSandboxRequest(command=["x" * 100_000], env={"A": "v" * 100_000}))
    assert refused(S.CreateSandboxRequest(secret_env={"TOKEN": "s\x00"})) == (
        "secret_env.TOKEN: contains a NUL character"
    )


def test_values_are_never_quoted_back() -> None:
    text = refused(sandbox_service_pb2.CreateSandboxRequest(owner="secret-owner" * 30))
    assert "secret-owner" not in text


def test_timestamps_and_durations_stay_in_protobufs_range() -> None:
    revoke = registry_service_pb2.RevokeTokenRequest
    check_request(revoke(expires_at=timestamp_pb2.Timestamp(seconds=1_800_000_000)))
    assert refused(revoke(expires_at=timestamp_pb2.Timestamp(seconds=-(2**40)))).startswith(
        "expires_at: not a valid timestamp"
    )
    assert refused(revoke(expires_at=timestamp_pb2.Timestamp(nanos=-1))).startswith("expires_at")
    stop = sandbox_service_pb2.StopSandboxRequest
    check_request(stop(grace_period=duration_pb2.Duration(seconds=-5, nanos=-1)))
    for bad in (duration_pb2.Duration(seconds=2**62), duration_pb2.Duration(seconds=1, nanos=-1)):
        assert refused(stop(grace_period=bad)).startswith("grace_period: not a valid duration")
