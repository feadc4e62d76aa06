"""Grader replicas as real processes: round-robin consistency and fuzzed validation."""

from __future__ import annotations

import re
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mleb.grader.v1 import grader_service_pb2 as pb
from mleb.grader.v1 import grader_service_pb2_grpc

from services.common.auth import Role
from tests.conftest import bearer
from tests.fixtures.grading_stack import COMPETITION, TRUTH, submission_csv
from tests.fixtures.processes import ServerProcess, settings_env, spawn_server


@pytest.fixture
def registry_process(imported_settings) -> Iterator[ServerProcess]:
    server = spawn_server("registry", settings_env(imported_settings))
    yield server
    server.kill()


@pytest.fixture
def graders(imported_settings, registry_process) -> Iterator[list[ServerProcess]]:
    settings = replace(imported_settings, registry_addr=registry_process.address)
    started = [
        spawn_server("grader", settings_env(settings, MLEB_METRICS_PORT="0")) for _ in range(3)
    ]
    yield started
    for server in started:
        server.kill()


def _score(stub, data: bytes, token: str) -> float:
    header = pb.SubmissionHeader(competition_id=COMPETITION)
    requests = iter(
        [pb.ScoreSubmissionRequest(header=header), pb.ScoreSubmissionRequest(chunk=data)]
    )
    return stub.ScoreSubmission(requests, metadata=bearer(token), timeout=30).score


def _handled(server: ServerProcess) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read().decode()
    counts = re.findall(
        r'mleb_rpc_requests_total\{code="OK",method="[^"]*ScoreSubmission"\} (\S+)', body
    )
    return sum(float(c) for c in counts)


def test_three_replicas_behind_round_robin_agree(graders, authority):
    token = authority.issue(Role.LAB, "lab")
    target = "ipv4:" + ",".join(g.address for g in graders)
    submissions = [
        submission_csv([not t if i < n else t for i, t in enumerate(TRUTH)]) for n in range(5)
    ]
    with grpc.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")]) as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        rounds = [[_score(stub, data, token) for data in submissions] for _ in range(6)]
    assert all(r == rounds[0] for r in rounds)
    assert rounds[0] == [round(1 - n / 40, 5) for n in range(5)]
    # Every replica served some of the 30 calls.
    assert all(_handled(g) > 0 for g in graders)


@pytest.fixture
def one_grader(imported_settings, registry_process) -> Iterator[ServerProcess]:
    settings = replace(imported_settings, registry_addr=registry_process.address)
    server = spawn_server("grader", settings_env(settings))
    yield server
    server.kill()


_csvish = st.lists(
    st.lists(st.text(max_size=30), min_size=0, max_size=6).map(lambda row: ",".join(row)),
    max_size=60,
).map(lambda rows: "\n".join(rows).encode())
_payloads = st.one_of(
    st.binary(max_size=4096),
    _csvish,
    st.text(max_size=2000).map(lambda t: t.encode("utf-16")),
    st.integers(min_value=1, max_value=200_000).map(
        lambda n: b"PassengerId,Transported\n" + b"x" * n
    ),
    st.just(b""),
)


def test_fuzzed_validation_never_errors_and_the_server_stays_up(one_grader, authority):
    # A lab token: a sandbox token would soon hit the per-sandbox rate limit instead.
    token = authority.issue(Role.LAB, "fuzz")
    with grpc.insecure_channel(one_grader.address) as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)

        @hypothesis_settings(
            max_examples=60, deadline=None, suppress_health_check=list(HealthCheck)
        )
        @given(payload=_payloads, chunk=st.integers(min_value=1, max_value=5000))
        def check(payload: bytes, chunk: int) -> None:
            header = pb.SubmissionHeader(competition_id=COMPETITION)
            parts = [pb.ValidateSubmissionRequest(header=header)] + [
                pb.ValidateSubmissionRequest(chunk=payload[i : i + chunk])
                for i in range(0, len(payload), chunk)
            ]
            reply = stub.ValidateSubmission(iter(parts), metadata=bearer(token), timeout=30)
            assert reply.message in ("Submission is valid.",) or reply.message.startswith(
                "Submission invalid! "
            )

        check()
        assert one_grader.process.poll() is None


def test_sigterm_mid_grade_exits_within_the_grace(one_grader, authority):
    """A grade pandas needs seconds for does not hold up shutdown (issue 16, item 7): the
    server stops within its grace (1 s here) and the process exits, the grade abandoned."""
    token = authority.issue(Role.LAB, "lab")
    rows = "".join(f"{i:07d}_01,True\n" for i in range(8_000_000))
    data = ("PassengerId,Transported\n" + rows).encode()  # 128 MB: seconds to parse
    header = pb.SubmissionHeader(competition_id=COMPETITION, size_bytes=len(data))
    chunks = [data[i : i + (4 << 20)] for i in range(0, len(data), 4 << 20)]
    uploaded = threading.Event()

    def frames():
        yield pb.ScoreSubmissionRequest(header=header)
        for chunk in chunks:
            yield pb.ScoreSubmissionRequest(chunk=chunk)
        uploaded.set()

    with grpc.insecure_channel(one_grader.address) as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        call = stub.ScoreSubmission.future(frames(), metadata=bearer(token), timeout=120)
        assert uploaded.wait(60)
        # The body is in and the grade under way (the fast paths parse 8M rows in about
        # two seconds here: a later signal could find it done).
        time.sleep(0.5)
        assert not call.done()
        stopped = time.monotonic()
        one_grader.process.send_signal(signal.SIGTERM)
        assert one_grader.process.wait(timeout=30) == 0
        assert time.monotonic() - stopped < 1 + 2.5, "shutdown waited for the grade"
        with pytest.raises(grpc.RpcError):
            call.result(timeout=10)
