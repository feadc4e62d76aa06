"""MLE-bench's HTTP `POST /validate`, as a hostile agent would use it: an oversize upload is
refused before its body is read, through the sandbox's real endpoint and a real grader."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
from pathlib import Path

import aiohttp
import pytest

from services.common.auth import Role
from services.grader.app import grader_service
from services.sandbox.backends.base import NetworkMode
from services.sandbox.node.endpoints import VALIDATE_SOCKET, SandboxEndpoints
from tests.fixtures.grading_stack import COMPETITION, submission_csv

MIB = 1024**2
CEILING = 16 * MIB
_TIMEOUT_S = 60.0


@pytest.fixture
async def endpoint(serve, stack, authority):
    settings = dataclasses.replace(stack.settings, sandbox_upload_max_bytes=CEILING)
    grader = await serve([grader_service(settings)], settings)
    endpoints = SandboxEndpoints(f"127.0.0.1:{grader.port}", settings)
    token = authority.issue(
        Role.SANDBOX, "sandbox:http", sandbox_id="http", competition_id=COMPETITION
    )
    with tempfile.TemporaryDirectory(dir="/tmp") as short:
        sockets = Path(short) / "s"
        await endpoints.open("http", sockets, token, NetworkMode.NONE, [])
        try:
            yield sockets / VALIDATE_SOCKET
        finally:
            await endpoints.aclose()


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, json.loads(await reader.readexactly(length))


async def test_a_declared_oversize_upload_is_refused_before_its_body(endpoint):
    reader, writer = await asyncio.open_unix_connection(str(endpoint))
    boundary = "b0undary"
    declared = 3 * 1024**3 // 2
    writer.write(
        (
            "POST /validate HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.csv"\r\n\r\n'
        ).encode()
    )
    await writer.drain()
    # Nothing more is sent: a server that waits for the body never answers.
    status, body = await asyncio.wait_for(_response(reader), _TIMEOUT_S)
    writer.close()
    assert status == 413 and set(body) == {"error", "details"}
    assert body["details"].startswith("RESOURCE_EXHAUSTED") and str(CEILING) in body["details"]


async def test_a_streamed_oversize_upload_is_cut_off_at_the_cap(endpoint):
    sent = 0
    release = asyncio.Event()

    async def body():
        nonlocal sent
        yield b"PassengerId,Transported\n"
        while sent < 1024**3:
            if sent >= 4 * CEILING:  # past any cap: a server still reading is a failure
                await release.wait()
            sent += MIB
            yield b"x" * MIB

    form = aiohttp.FormData()
    form.add_field("file", body(), filename="big.csv", content_type="text/csv")
    connector = aiohttp.UnixConnector(path=str(endpoint))
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            reply = await asyncio.wait_for(
                session.post("http://localhost/validate", data=form), _TIMEOUT_S
            )
            status, payload = reply.status, await reply.json()
    except (aiohttp.ClientError, ConnectionError):
        pytest.fail(f"the endpoint dropped the connection instead of answering ({sent} sent)")
    finally:
        release.set()
    # The grader's cap for this competition (its 4 MiB floor) is below the HTTP ceiling.
    assert status == 413, payload
    assert payload["details"].startswith("RESOURCE_EXHAUSTED")
    assert sent < 4 * CEILING, sent


async def test_an_honest_upload_still_validates(endpoint):
    form = aiohttp.FormData()
    form.add_field("file", submission_csv(), filename="submission.csv", content_type="text/csv")
    async with (
        aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(endpoint))) as session,
        session.post("http://localhost/validate", data=form) as reply,
    ):
        assert (reply.status, await reply.json()) == (200, {"result": "Submission is valid."})
