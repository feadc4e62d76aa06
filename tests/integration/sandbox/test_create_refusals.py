"""Absurd or malformed CreateSandbox values are refused at create (issue 16, items 3 and 7).

Each was once accepted and failed later, in the engine or runc, as an "infrastructure"
failure that `mleb run` retried. Through a real sandbox server on port 0.
"""

from __future__ import annotations

import math

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mleb.sandbox.v1 import sandbox_pb2

from tests.fixtures.sandbox_stack import agent

S = sandbox_pb2


def violation(error: grpc.aio.AioRpcError) -> error_details_pb2.BadRequest.FieldViolation:
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return bad.field_violations[0]
    raise AssertionError(f"no BadRequest in {error.details()}")


def allowlist(*hosts: str) -> dict:
    return {"network": S.NetworkPolicy(mode=S.NETWORK_MODE_ALLOWLIST, allowed_hosts=hosts)}


CASES = [
    ({"resources": S.Resources(cpus=math.nan)}, "resources.cpus"),
    ({"resources": S.Resources(cpus=math.inf)}, "resources.cpus"),
    ({"resources": S.Resources(cpus=1e12)}, "resources.cpus"),
    ({"resources": S.Resources(cpus=0.001)}, "resources.cpus"),
    ({"resources": S.Resources(memory_bytes=1)}, "resources.memory_bytes"),
    ({"resources": S.Resources(memory_bytes=1 << 62)}, "resources.memory_bytes"),
    ({"resources": S.Resources(pids_limit=1 << 62)}, "resources.pids_limit"),
    ({"resources": S.Resources(shm_bytes=1 << 62)}, "resources.shm_bytes"),
    ({"resources": S.Resources(gpu_count=100000)}, "resources.gpu_count"),
    (allowlist(""), "network.allowed_hosts[0]"),
    (allowlist("example.com", "a b"), "network.allowed_hosts[1]"),
    (allowlist("x" * 300), "network.allowed_hosts[0]"),
    ({"env": {"A": "x\x00y"}}, "env.A"),
    ({"env": {"A\x00": "1"}}, "env"),
    ({"secret_env": {"TOKEN": "hunter2\x00"}}, "secret_env.TOKEN"),
    ({"idempotency_key": "key\x00"}, "idempotency_key"),
    ({"idempotency_key": "k" * 257}, "idempotency_key"),
    ({"image": "UPPER/Case!!"}, "image"),
    ({"image": "../x"}, "image"),
    ({"image": "python:3.11 slim"}, "image"),
    ({"image": "ghcr.io/" + "a" * 600}, "image"),
    ({"owner": "o" * 257}, "owner"),
    ({"owner": "lab\x00"}, "owner"),
    ({"labels": {"k": "v\x00"}}, "labels.k"),
    ({"competition_id": "c" * 129}, "competition_id"),
]


@pytest.mark.parametrize(
    ("fields", "field"), CASES, ids=[f"{f}-{i}" for i, (_, f) in enumerate(CASES)]
)
async def test_bad_values_are_refused_at_create(sandbox_stack, fields, field) -> None:
    _server, stub = await sandbox_stack.start()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await sandbox_stack.create(stub, agent("pass"), **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    found = violation(err.value)
    assert found.field == field, (found, err.value.details())
    text = err.value.details() + found.description
    assert "hunter2" not in text and "Error" not in text and "<class" not in text
    assert len(text) < 600  # an echoed value is cut short


async def test_good_values_still_create(sandbox_stack) -> None:
    _server, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(
        stub,
        agent("pass"),
        image="ghcr.io/some-org/agent_image:v1.2-rc",
        resources=S.Resources(cpus=0.5, memory_bytes=256 << 20, pids_limit=64),
        env={"A": "1"},
        **allowlist("*.example.com:443", "pypi.org"),
    )
    await sandbox_stack.wait_for(stub, sandbox.id)


async def test_operators_set_the_bounds(sandbox_stack, monkeypatch) -> None:
    from services.sandbox.lifecycle.request_checks import RequestLimits

    monkeypatch.setenv("MLEB_SANDBOX_MAX_MEMORY_BYTES", str(512 << 20))
    monkeypatch.setenv("MLEB_SANDBOX_MAX_PIDS_LIMIT", "100")
    limits = RequestLimits.from_env()
    _server, stub = await sandbox_stack.start(request_limits=limits)
    for resources, field in (
        (S.Resources(memory_bytes=1 << 30), "resources.memory_bytes"),
        (S.Resources(pids_limit=101), "resources.pids_limit"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await sandbox_stack.create(stub, agent("pass"), resources=resources)
        assert violation(err.value).field == field
    monkeypatch.setenv("MLEB_SANDBOX_MAX_CPUS", "nan")
    with pytest.raises(Exception, match="MLEB_SANDBOX_MAX_CPUS"):
        RequestLimits.from_env()


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"env": {"FOO\n": "1"}}, "env"), ({"labels": {"abc\n": "v"}}, "labels")],
    ids=["env-name", "label-key"],
)
async def test_a_trailing_newline_is_no_name(sandbox_stack, fields, field) -> None:
    """`$` matches before a final newline: names are checked whole (issue 16 review)."""
    _server, stub = await sandbox_stack.start()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await sandbox_stack.create(stub, agent("pass"), **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(err.value).field == field
