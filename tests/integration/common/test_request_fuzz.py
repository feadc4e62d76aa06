"""Fuzzed requests against real `mleb serve` processes of all three services (issue 16).

Every method of the registry, grader and sandbox services gets hypothesis-built requests:
messages built from the method's own descriptor (any field set or not, strings long, empty,
with NUL or odd Unicode, numbers at and past their bounds, NaN and infinities, unknown enum
values, invalid timestamps), and raw bytes that need not be protobuf at all. The servers run
as separate processes over a real database, SQLite and PostgreSQL. Any INTERNAL or UNKNOWN,
any exception class name, server path or engine address in a reply, and any server that
dies fails the test. The example count bounds the time (about half a minute a database).
"""

from __future__ import annotations

import os
import re
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mleb.grader.v1 import grader_service_pb2
from mleb.registry.v1 import registry_service_pb2
from mleb.sandbox.v1 import sandbox_service_pb2, sandbox_service_pb2_grpc

from services.common.auth import Role, TokenAuthority
from services.common.settings import Settings
from tests.conftest import TEST_AUTH_SECRET, bearer
from tests.fixtures.grading_stack import COMPETITION, import_spaceship
from tests.fixtures.processes import ServerProcess, settings_env, spawn_server
from tests.fixtures.sandbox_stack import TERMINAL

SERVICES = {
    "registry": registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"],
    "grader": grader_service_pb2.DESCRIPTOR.services_by_name["GraderService"],
    "sandbox": sandbox_service_pb2.DESCRIPTOR.services_by_name["SandboxService"],
}
METHODS = [(name, method) for name, svc in SERVICES.items() for method in svc.methods]
# CI runs this many a database; set MLEB_FUZZ_EXAMPLES for a longer hunt.
EXAMPLES_PER_DATABASE = int(os.environ.get("MLEB_FUZZ_EXAMPLES", "300"))
CALL_TIMEOUT_S = 10.0
# Python exception class names, as a traceback or repr would show them.
EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Violation|Truncation)\b")
LEAKS = ("<class", "Traceback", "site-packages", "docker.sock", "http+docker", "/usr/lib")

INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _fill(message: Message, values: dict) -> Message:
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def _harmless(method: MethodDescriptor, message: Message) -> Message:
    # A create that passes every check runs its command on the local backend: make it true(1).
    if method.name == "CreateSandbox" and message.command:
        message.command.insert(0, "/bin/true")
    return message


class Requests:
    """Hypothesis strategies for any request of any method, built from its descriptor."""

    def __init__(self, known: list[str]) -> None:
        # Real ids (the competition, a live sandbox) reach the code behind the lookups.
        self.text = st.one_of(
            st.text(max_size=24),
            st.text(alphabet=string.printable + "\x00é☃\u202e", max_size=64),
            st.sampled_from([*known, "all", "low", "lite", "sbx-0", "..", "/etc/passwd", " "]),
            st.builds(lambda c, n: c * n, st.sampled_from("x\x00é"), st.sampled_from([129, 5000])),
        )

    def scalar(self, field: FieldDescriptor) -> st.SearchStrategy:
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            return self.text
        if kind == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=256)
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if kind == FieldDescriptor.TYPE_ENUM:
            return st.integers(-3, 40)  # open enums: unknown numbers are legal on the wire
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
        low, high = INT_RANGES[kind]
        edges = st.sampled_from([low, high, 0, 1, -1 if low else 2])
        return st.one_of(st.integers(low, high), edges)

    def field(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy:
        message_type = field.message_type
        if field.type == FieldDescriptor.TYPE_MESSAGE and message_type.GetOptions().map_entry:
            key, value = message_type.fields_by_name["key"], message_type.fields_by_name["value"]
            return st.dictionaries(self.scalar(key), self.field(value, depth + 1), max_size=4)
        single = (
            self.messages(message_type, depth + 1)
            if field.type == FieldDescriptor.TYPE_MESSAGE
            else self.scalar(field)
        )
        return st.lists(single, max_size=4) if field.is_repeated else single

    def messages(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy:
        """Any message of this type: each field set or not, to any value its type carries."""
        cls = message_factory.GetMessageClass(descriptor)
        if depth > 3:
            return st.builds(cls)
        fields = {f.name: st.deferred(lambda f=f: self.field(f, depth)) for f in descriptor.fields}
        return st.fixed_dictionaries({}, optional=fields).map(lambda values: _fill(cls(), values))

    def frames(self, method: MethodDescriptor) -> st.SearchStrategy:
        """What one call sends: a list of frames, each encoded protobuf or raw bytes."""
        encoded = self.messages(method.input_type).map(
            lambda m: _harmless(method, m).SerializeToString()
        )
        frame = st.one_of(encoded, encoded, st.binary(max_size=512))
        if method.client_streaming:
            return st.lists(frame, min_size=0, max_size=4)
        return frame.map(lambda f: [f])


@dataclass
class Deployment:
    servers: dict[str, ServerProcess]
    tokens: list[tuple[tuple[str, str], ...]]
    root: Path
    known_ids: list[str]

    def check_alive(self) -> None:
        for name, server in self.servers.items():
            assert server.process.poll() is None, f"{name} died:\n{''.join(server.lines[-40:])}"


@contextmanager
def _live_sandbox(server: ServerProcess, metadata) -> Iterator[str]:
    """A sandbox that stays running, so stops, logs and downloads reach a real one."""
    with grpc.insecure_channel(server.address) as channel:
        stub = sandbox_service_pb2_grpc.SandboxServiceStub(channel)
        reply = stub.CreateSandbox(
            sandbox_service_pb2.CreateSandboxRequest(
                competition_id=COMPETITION, command=["/bin/sleep", "600"]
            ),
            metadata=metadata,
        )
        try:
            yield reply.sandbox.id
        finally:
            # Local agents outlive the service by design: stop this one before it goes.
            stop = sandbox_service_pb2.StopSandboxRequest(sandbox_id=reply.sandbox.id)
            stub.StopSandbox(stop, metadata=metadata)
            get = sandbox_service_pb2.GetSandboxRequest(sandbox_id=reply.sandbox.id)
            deadline = time.monotonic() + 20
            while stub.GetSandbox(get, metadata=metadata).sandbox.state not in TERMINAL:
                assert time.monotonic() < deadline, "the fuzz sandbox did not stop"
                time.sleep(0.2)


@pytest.fixture
def deployment(database_url: str, tmp_path: Path, open_tmp: Path) -> Iterator[Deployment]:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, auth_secret=TEST_AUTH_SECRET
    )
    import_spaceship(settings, tmp_path / "sources")
    servers: dict[str, ServerProcess] = {}
    try:
        servers["registry"] = spawn_server("registry", settings_env(settings))
        settings = replace(settings, registry_addr=servers["registry"].address)
        servers["grader"] = spawn_server("grader", settings_env(settings))
        settings = replace(settings, grader_addr=servers["grader"].address)
        servers["sandbox"] = spawn_server(
            "sandbox",
            settings_env(
                settings,
                MLEB_SANDBOX_BACKEND="local",
                MLEB_SANDBOX_WORK_DIR=str(open_tmp / "work"),
                MLEB_SANDBOX_NODE="fuzz-node",
            ),
        )
        authority = TokenAuthority.from_spec(TEST_AUTH_SECRET)
        sandbox = authority.issue(
            Role.SANDBOX, "fuzz-agent", sandbox_id="sbx-fuzz", competition_id=COMPETITION
        )
        tokens = [bearer(authority.issue(role, "fuzz")) for role in (Role.LAB, Role.SERVICE)]
        with _live_sandbox(servers["sandbox"], tokens[0]) as sandbox_id:
            known_ids = [COMPETITION, sandbox_id]
            yield Deployment(servers, [*tokens, bearer(sandbox), ()], tmp_path, known_ids)
    finally:
        for server in servers.values():
            server.terminate()


def _call(channel: grpc.Channel, method: MethodDescriptor, sent: list[bytes], metadata):
    path = f"/{method.containing_service.full_name}/{method.name}"
    kwargs = {"metadata": metadata, "timeout": CALL_TIMEOUT_S}
    if method.client_streaming and method.server_streaming:
        raise AssertionError("no bidirectional methods are expected")
    if method.client_streaming:
        channel.stream_unary(path)(iter(sent), **kwargs)
    elif method.server_streaming:
        for _ in channel.unary_stream(path)(sent[0], **kwargs):
            pass
    else:
        channel.unary_unary(path)(sent[0], **kwargs)


def _reply_text(error: grpc.RpcError) -> str:
    parts = [error.details() or ""]
    status = rpc_status.from_call(error)
    if status is not None:
        parts += [status.message, *(str(detail) for detail in status.details)]
    return "\n".join(parts)


def _check_text(text: str, where: str, root: Path) -> None:
    assert not EXCEPTION_NAME.search(text), where
    assert not any(leak in text for leak in LEAKS), where
    assert str(root) not in text and "/tmp/" not in text, where


AUTH_REFUSALS = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def _check_reach(channels: dict[str, grpc.Channel], tokens) -> None:
    """The fuzz tests something: every method answers some token past authentication."""
    for service, method in METHODS:
        reached = False
        for metadata in tokens:
            try:
                _call(channels[service], method, [b""], metadata)
                reached = True
            except grpc.RpcError as error:
                reached = reached or error.code() not in AUTH_REFUSALS
        assert reached, f"no token gets past authentication for {method.full_name}"


def _check_finished_records(channel: grpc.Channel, service_token, root: Path) -> None:
    """Sandboxes the fuzz managed to create: no failure message leaks what a reply may not."""
    stub = sandbox_service_pb2_grpc.SandboxServiceStub(channel)
    listing = stub.ListSandboxes(sandbox_service_pb2.ListSandboxesRequest(), metadata=service_token)
    for sandbox in listing.sandboxes:
        _check_text(sandbox.failure_message, f"{sandbox.id}: {sandbox.failure_message}", root)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fuzzed_requests_never_break_a_service(deployment: Deployment) -> None:
    channels = {name: grpc.insecure_channel(s.address) for name, s in deployment.servers.items()}
    requests = Requests(deployment.known_ids)
    methods = st.sampled_from(METHODS).flatmap(
        lambda pair: st.tuples(
            st.just(pair), requests.frames(pair[1]), st.sampled_from(deployment.tokens)
        )
    )

    @settings(
        max_examples=EXAMPLES_PER_DATABASE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(methods)
    def one_call(case) -> None:
        (service, method), sent, metadata = case
        try:
            _call(channels[service], method, sent, metadata)
        except grpc.RpcError as error:
            code, text = error.code(), _reply_text(error)
            where = f"{method.full_name}: {code.name}: {text[:500]}"
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), where
            _check_text(text, where, deployment.root)
            if code == grpc.StatusCode.INVALID_ARGUMENT:  # a refusal carries its reason
                assert "google.rpc.ErrorInfo" in text, where
        deployment.check_alive()

    try:
        _check_reach(channels, deployment.tokens)
        one_call()
        _check_finished_records(channels["sandbox"], deployment.tokens[1], deployment.root)
    finally:
        for channel in channels.values():
            channel.close()
