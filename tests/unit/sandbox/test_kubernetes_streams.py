"""The Kubernetes backend's readers, without a cluster: the log stream cut into bounded
lines (over a real HTTP server and urllib3, as the client reads it), one Pod listing shared
by every sandbox, and the collected outputs unpacked all or nothing."""

from __future__ import annotations

import asyncio
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import urllib3
from mleb.lab.artifact_extraction import UnsafeArchive

from services.sandbox.backends.kubernetes.outputs import unpack_outputs
from services.sandbox.backends.kubernetes.pod_board import PodBoard
from services.sandbox.backends.kubernetes.pod_logs import LogLines, Piece, parse_log_line
from services.sandbox.backends.kubernetes.pod_view import PodView
from services.sandbox.node.runner_files import MAX_LINE_BYTES

STAMP = b"2026-12-06T07:00:00.123456789Z"
ENDLESS = b"x" * (MAX_LINE_BYTES * 2 + 10)  # a progress bar that never ends its line


class _Logs(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (STAMP + b" hello\n", STAMP + b" " + ENDLESS, b"\n" + STAMP + b" bye\n"):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def log_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Logs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_a_line_that_never_ends_comes_in_bounded_pieces(log_server):
    response = urllib3.PoolManager().request("GET", log_server, preload_content=False)
    lines = LogLines(response)
    raw = []
    while (piece := lines.next_line()).data:
        assert len(piece.data) <= MAX_LINE_BYTES
        raw.append(piece)
    lines.close()
    assert [p.starts_line for p in raw] == [True, True, False, False, True]
    parsed = []
    for piece in raw:
        line = parse_log_line(piece, parsed[-1].time if parsed else 0.0)
        assert line is not None
        parsed.append(line)
    assert parsed[0].text == "hello" and parsed[-1].text == "bye"
    assert "".join(line.text for line in parsed[1:-1]) == ENDLESS.decode()
    # The pieces after the first carry the time of the line they belong to.
    assert len({line.time for line in parsed}) == 1


def test_only_a_lines_start_is_read_for_its_time():
    assert parse_log_line(Piece(b"no stamp here\n", True), 0.0) is None
    # The agent's text after a cut looks like a time: it is text, at its line's time.
    forged = parse_log_line(Piece(b"2099-01-01 x\n", False), 1.5)
    assert forged is not None and (forged.text, forged.time) == ("2099-01-01 x", 1.5)
    assert parse_log_line(Piece(b"rest of a line\n", False), 0.0) is None


async def test_one_listing_serves_every_concurrent_reader():
    calls = 0

    async def list_pods():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return [PodView.from_json({"metadata": {"name": f"mleb-{n}"}}) for n in range(3)]

    board = PodBoard(list_pods, interval_s=60)
    found = await asyncio.gather(*(board.pod(f"mleb-{n % 4}") for n in range(40)))
    assert calls == 1
    assert [p.name if p else None for p in found[:4]] == [
        "mleb-0",
        "mleb-1",
        "mleb-2",
        None,
    ]


async def test_a_failed_listing_is_tried_again_by_the_next_reader():
    outcomes = [RuntimeError("apiserver away"), []]

    async def list_pods():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    board = PodBoard(list_pods, interval_s=60)
    with pytest.raises(RuntimeError):
        await board.pod("mleb-0")
    assert await board.pod("mleb-0") is None


def _tar(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return path


def test_outputs_replace_the_folders_only_when_whole(tmp_path):
    root = tmp_path / "sandbox"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "old.csv").write_text("old")
    unpack_outputs(_tar(tmp_path / "a.tar", ["submission/submission.csv"]), root, 10)
    assert [p.name for p in (root / "submission").iterdir()] == ["submission.csv"]
    assert (root / "logs").is_dir() and (root / "code").is_dir()
    # A hostile tar leaves what was there as it was, and no staging folder behind.
    with pytest.raises(UnsafeArchive):
        unpack_outputs(_tar(tmp_path / "b.tar", ["../escape"]), root, 10)
    assert [p.name for p in (root / "submission").iterdir()] == ["submission.csv"]
    assert sorted(p.name for p in root.iterdir()) == ["code", "logs", "submission"]


def test_outputs_with_too_many_members_are_refused_before_unpacking(tmp_path):
    root = tmp_path / "sandbox"
    root.mkdir()
    names = [f"logs/f{n}" for n in range(11)]
    with pytest.raises(UnsafeArchive, match="over 10"):
        unpack_outputs(_tar(tmp_path / "many.tar", names), root, 10)
    assert list(root.iterdir()) == []


def test_a_pod_is_read_from_the_apis_json_with_what_the_backend_uses():
    pod = PodView.from_json(
        {
            "metadata": {"name": "mleb-sbx-1", "uid": "u-1", "labels": {"a": "b"}},
            "spec": {"nodeName": "gpu-7"},
            "status": {
                "phase": "Running",
                "initContainerStatuses": [
                    {
                        "name": "stage",
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    }
                ],
                "containerStatuses": [
                    {
                        "name": "agent",
                        "image": "agent:1",
                        "imageID": "docker://sha256:ab",
                        "state": {
                            "terminated": {
                                "exitCode": 137,
                                "reason": "OOMKilled",
                                "startedAt": "2026-12-06T07:00:00Z",
                            }
                        },
                    },
                    {"name": "endpoints", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
                ],
            },
        }
    )
    assert (pod.name, pod.uid, pod.node_name, pod.phase, pod.ended) == (
        "mleb-sbx-1",
        "u-1",
        "gpu-7",
        "Running",
        False,
    )
    agent = pod.container("agent")
    assert agent is not None and agent.terminated is not None
    assert (agent.terminated.exit_code, agent.terminated.reason) == (137, "OOMKilled")
    assert agent.started_at == 1796540400.0 and agent.image_id == "docker://sha256:ab"
    assert pod.container("endpoints").waiting_reason == "ImagePullBackOff"  # type: ignore[union-attr]
    assert pod.container("nothing") is None
    assert PodView.from_json({}).containers == ()
