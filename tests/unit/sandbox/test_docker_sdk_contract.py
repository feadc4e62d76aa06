"""The Docker backend's log reader uses private members of the docker SDK (see
services.sandbox.backends.docker.backend.open_log_stream for which and why). These tests fail loudly
when an SDK upgrade removes or changes them, instead of the log reader breaking at run time."""

from __future__ import annotations

import inspect
import json
import struct
import threading
import time
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.api.client import APIClient

from services.sandbox.backends.docker.backend import open_log_stream

PINNED = "7.1.0"
REPO = Path(__file__).resolve().parents[3]

# The private members open_log_stream calls, with the parameters it relies on.
PRIVATE_MEMBERS = {
    "_url": ["self", "pathfmt", "args", "kwargs"],
    "_raise_for_status": ["self", "response"],
    "_get_raw_response_socket": ["self", "response"],
    "_disable_socket_timeout": ["self", "socket"],
}


def test_the_installed_sdk_is_the_pinned_one() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert f"docker=={PINNED}" in project["project"]["dependencies"], (
        "the docker pin moved: recheck open_log_stream's private SDK calls, then update PINNED"
    )
    assert docker.__version__ == PINNED


@pytest.mark.parametrize("name", sorted(PRIVATE_MEMBERS))
def test_private_members_keep_their_signatures(name: str) -> None:
    member = getattr(APIClient, name, None)
    assert callable(member), f"docker SDK no longer has APIClient.{name}"
    assert list(inspect.signature(member).parameters) == PRIVATE_MEMBERS[name]


def test_private_get_still_takes_url_params_and_stream() -> None:
    member = getattr(APIClient, "_get", None)
    assert callable(member), "docker SDK no longer has APIClient._get"
    inspect.signature(member).bind(None, "url", params={}, stream=True)
    # _get is wrapped (update_headers) without functools.wraps: check the function inside too.
    inner = [c.cell_contents for c in member.__closure__ or () if callable(c.cell_contents)]
    assert len(inner) == 1, "APIClient._get is no longer the update_headers wrapper of 7.1.0"
    assert list(inspect.signature(inner[0]).parameters) == ["self", "url", "kwargs"]


# What the engine would send: multiplexed frames, with a pause longer than the client's timeout.
FRAMES = [(1, b"2024-01-01T00:00:00.000000001Z out\n"), (2, b"2024-01-01T00:00:01Z err\n")]
PAUSE_S = 1.0
CLIENT_TIMEOUT_S = 0.3


class _FakeEngine(BaseHTTPRequestHandler):
    requested: list[str] = []

    def do_GET(self) -> None:
        type(self).requested.append(self.path)
        if "/containers/gone/" in self.path:
            body = json.dumps({"message": "No such container: gone"}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
        self.end_headers()  # HTTP/1.0 with no length: the body ends when the socket closes
        for index, (stream_id, payload) in enumerate(FRAMES):
            if index:
                time.sleep(PAUSE_S)
            self.wfile.write(struct.pack(">BxxxL", stream_id, len(payload)) + payload)
            self.wfile.flush()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[APIClient]:
    _FakeEngine.requested = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = APIClient(
        base_url=f"tcp://127.0.0.1:{server.server_address[1]}",
        version="1.41",
        timeout=CLIENT_TIMEOUT_S,
    )
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_open_log_stream_reads_raw_frames_with_no_read_timeout(api: APIClient) -> None:
    kept: list[Any] = []
    params = {"stdout": 1, "stderr": 1, "follow": 1, "timestamps": 1, "since": "1.500000000"}
    res = open_log_stream(api, "abc", params, kept.append)
    assert kept == [res]
    frames = []
    while header := res.raw.read(8):  # the pause outlasts the client's timeout
        stream_id, length = struct.unpack(">BxxxL", header)
        frames.append((stream_id, res.raw.read(length)))
    assert frames == FRAMES
    path, _, query = _FakeEngine.requested[0].partition("?")
    assert path == "/v1.41/containers/abc/logs"
    assert sorted(query.split("&")) == sorted(
        ["stdout=1", "stderr=1", "follow=1", "timestamps=1", "since=1.500000000"]
    )


def test_open_log_stream_raises_not_found_for_a_gone_container(api: APIClient) -> None:
    kept: list[Any] = []
    with pytest.raises(docker.errors.NotFound):
        open_log_stream(api, "gone", {"stdout": 1}, kept.append)
    assert len(kept) == 1  # handed over before the error, so the caller can close it
