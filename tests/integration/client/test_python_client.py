"""The `mleb` Python client against real servers: sync and async, typed errors, round-robin,
retries on UNAVAILABLE, and the in-sandbox mleb-validate tool."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

import pytest
from mleb.client import AsyncClient, Client
from mleb.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated

from services.common.auth import Role
from services.grader.app import grader_service
from tests.fixtures.grading_stack import COMPETITION, TRUTH, submission_csv


def _flip(n: int) -> bytes:
    return submission_csv([not t if i < n else t for i, t in enumerate(TRUTH)])


async def test_async_client_round_trip_and_typed_errors(stack, lab_token, authority):
    registry = f"127.0.0.1:{stack.registry_port}"
    grader = f"127.0.0.1:{stack.grader_port}"
    async with AsyncClient(registry=registry, grader=grader, token=lab_token) as client:
        listing = await client.list_competitions(split="low")
        assert [c.id for c in listing.competitions] == [COMPETITION]
        assert (await client.score_submission(COMPETITION, _flip(4))).score == 0.9
        valid = await client.validate_submission(COMPETITION, _flip(4))
        assert valid.valid and valid.message == "Submission is valid."
        with pytest.raises(NotFound) as not_found:
            await client.get_competition("no-such-competition")
        assert not_found.value.request_id
        with pytest.raises(InvalidArgument) as bad:
            await client.rank_score("", 0.5)
        assert bad.value.field_violations[0].field == "competition_id"
    async with AsyncClient(registry=registry, token="") as anonymous:
        with pytest.raises(Unauthenticated):
            await anonymous.list_splits()
    sandbox = authority.issue(Role.SANDBOX, "a", sandbox_id="s", competition_id="other")
    async with AsyncClient(grader=grader, token=sandbox) as agent:
        with pytest.raises(PermissionDenied) as denied:
            await agent.validate_submission(COMPETITION, _flip(0))
        assert denied.value.reason == "WRONG_COMPETITION"


async def test_sync_client_streams_files_and_reads_downloads(stack, lab_token, tmp_path):
    path = tmp_path / "submission.csv"
    path.write_bytes(_flip(2))

    def work():
        with Client(
            registry=f"127.0.0.1:{stack.registry_port}",
            grader=f"127.0.0.1:{stack.grader_port}",
            token=lab_token,
        ) as client:
            report = client.grade_submission(COMPETITION, path).report
            chunks = list(client.download_public_data(COMPETITION))
            return report, chunks

    report, chunks = await asyncio.to_thread(work)
    assert report.score == 0.95 and report.submission_path == str(path)
    assert {c.path for c in chunks} >= {"sample_submission.csv"}


async def test_round_robin_spreads_calls_over_graders(serve, stack, lab_token):
    second = await serve([grader_service(stack.settings)], stack.settings)
    addresses = [f"127.0.0.1:{stack.grader_port}", f"127.0.0.1:{second.port}"]
    async with AsyncClient(grader=addresses, token=lab_token) as client:
        scores = [
            (await client.score_submission(COMPETITION, _flip(n % 3))).score for n in range(12)
        ]
    assert scores == [round(1 - (n % 3) / 40, 5) for n in range(12)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_idempotent_calls_retry_until_the_server_is_up(serve, stack, lab_token):
    port = _free_port()

    async def start_late():
        await asyncio.sleep(0.6)
        from services.common.server import start_server

        return await start_server(
            [grader_service(stack.settings)], stack.settings, port=port, host="127.0.0.1"
        )

    late = asyncio.create_task(start_late())
    try:
        async with AsyncClient(grader=f"127.0.0.1:{port}", token=lab_token) as client:
            reply = await client.rank_score(COMPETITION, 0.99)
        assert reply.ranking.gold_medal
    finally:
        await (await late).stop(0.1)


async def test_mleb_validate_tool(stack, authority, tmp_path):
    token = authority.issue(Role.SANDBOX, "agent", sandbox_id="s1", competition_id=COMPETITION)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(_flip(3))
    bad.write_bytes(b"PassengerId\nx\n")
    env = {
        **os.environ,
        "MLEB_GRADER_ADDR": f"127.0.0.1:{stack.grader_port}",
        "MLEB_SANDBOX_TOKEN": token,
        "COMPETITION_ID": COMPETITION,
    }
    tool = [sys.executable, "-m", "mleb.validate_cli"]

    def run(*args):
        return subprocess.run([*tool, *args], env=env, capture_output=True, text=True, timeout=60)

    # One after another: a sandbox may have only one validation in flight.
    valid = await asyncio.to_thread(run, str(good))
    invalid = await asyncio.to_thread(run, str(bad))
    missing = await asyncio.to_thread(run, str(tmp_path / "nope.csv"))
    assert (valid.returncode, valid.stdout.strip()) == (0, "Submission is valid.")
    assert invalid.returncode == 1 and invalid.stdout.startswith("Submission invalid! ")
    assert missing.returncode == 2


def test_target_for_several_addresses():
    from mleb.channels import target_for

    assert target_for("a:1") == "a:1"
    assert target_for(["10.0.0.1:1", "10.0.0.2:1"]) == "ipv4:10.0.0.1:1,10.0.0.2:1"
    with pytest.raises(ValueError):
        target_for(["grader-a:1", "grader-b:1"])


async def test_async_uploads_report_the_graders_refusal_not_a_transport_error(stack, authority):
    # The grader refuses from the header while the body is still being sent. grpc.aio turns
    # a write that fails as the call ends into INTERNAL, dropping the server's status
    # (grpc/grpc#36066); the client must still raise the grader's own error, every time.
    grader = f"127.0.0.1:{stack.grader_port}"
    sandbox = authority.issue(Role.SANDBOX, "a", sandbox_id="s", competition_id="other")
    body = _flip(0) + b"\n" * (6 * 1024**2)
    async with AsyncClient(grader=grader, token=sandbox) as agent:
        for _ in range(30):
            with pytest.raises(PermissionDenied) as denied:
                await agent.validate_submission(COMPETITION, body)
            assert denied.value.reason == "WRONG_COMPETITION"
