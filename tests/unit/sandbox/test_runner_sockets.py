"""The node runner's sockets folders: a killed runner's is swept by the next runner, a live
one's never is, the sweep never follows a link or touches what is not this node's runners',
and no other user of the node reaches a live sandbox's sockets."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import jwt
import pytest

from services.sandbox.backends.base import LaunchSpec, NetworkMode
from services.sandbox.node import runner_sockets
from services.sandbox.node.layout import host_layout
from services.sandbox.node.runner_endpoints import NodeEndpoints
from services.sandbox.node.runner_files import RunnerFiles, RunnerOptions
from services.sandbox.node.runner_sockets import SocketsFolder, node_prefix, sweep_abandoned
from tests.conftest import require_or_skip

# A runner in its own process: claims a folder, prints it, waits to be killed.
_RUNNER = """
import sys, time
from pathlib import Path
from services.sandbox.node.runner_sockets import SocketsFolder
folder = SocketsFolder.claim("sbx-child", Path(sys.argv[1]))
(folder.path / "validate-http.sock").write_bytes(b"")
print(folder.path, flush=True)
time.sleep(600)
"""


@pytest.fixture
def runner(tmp_path):
    started: list[subprocess.Popen] = []

    def start() -> tuple[subprocess.Popen, Path]:
        process = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None
        return process, Path(process.stdout.readline().strip())

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_killed_runners_folder_is_swept_by_the_next_runner(tmp_path, runner):
    process, left = runner()
    assert left.is_dir()
    process.send_signal(signal.SIGKILL)
    process.wait()

    folder = SocketsFolder.claim("sbx-next", tmp_path)
    assert not left.exists()
    assert folder.path.is_dir() and folder.path.name.startswith(f"{node_prefix()}sbx-next-")
    folder.remove()
    assert list(tmp_path.iterdir()) == []


def test_a_live_runners_folder_is_kept(tmp_path, runner):
    _, live = runner()
    folder = SocketsFolder.claim("sbx-next", tmp_path)
    sweep_abandoned(tmp_path)
    assert (live / "validate-http.sock").exists()
    assert folder.path.is_dir()
    folder.remove()
    folder.remove()  # idempotent
    assert live.is_dir() and not folder.path.exists()


def test_the_sweep_never_follows_a_link_or_touches_what_is_not_a_runners(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("x")
    (tmp_path / f"{node_prefix()}sbx-link").symlink_to(victim)
    (tmp_path / f"{node_prefix()}sbx-file").write_text("not a folder")
    others = [tmp_path / "mleb-sbx-test-1", tmp_path / "mleb-runner-0another-sbx-1-x"]
    for other in others:  # a test fixture's; another node's, through a shared TMPDIR
        other.mkdir()

    sweep_abandoned(tmp_path)

    assert (victim / "precious").read_text() == "x"
    assert (tmp_path / f"{node_prefix()}sbx-link").is_symlink()
    assert (tmp_path / f"{node_prefix()}sbx-file").is_file()
    assert all(other.is_dir() for other in others)


def test_another_users_folder_is_left(tmp_path, monkeypatch):
    theirs = tmp_path / f"{node_prefix()}sbx-theirs"
    theirs.mkdir()
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(theirs).st_uid + 1)
    sweep_abandoned(tmp_path)
    assert theirs.is_dir()


def test_a_folder_a_sweep_holds_is_given_up_for_a_fresh_one(tmp_path, monkeypatch):
    """A sweep that locked the fresh folder before its runner did is about to remove it: the
    runner makes another rather than keep one that is going."""
    made: list[Path] = []
    held: list[int] = []
    mkdtemp = tempfile.mkdtemp

    def racing_mkdtemp(**kwargs):
        path = Path(mkdtemp(**kwargs))
        made.append(path)
        if len(made) == 1:  # a sweep, in another open file, takes the first one's lock
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(fd)
        return str(path)

    monkeypatch.setattr(runner_sockets.tempfile, "mkdtemp", racing_mkdtemp)
    folder = SocketsFolder.claim("sbx-racy", tmp_path)
    assert folder.path == made[1] != made[0]
    os.close(held[0])
    folder.remove()


def test_a_folder_swept_before_it_was_locked_is_given_up(tmp_path, monkeypatch):
    """The sweep removed the fresh folder between the runner's open and its lock, then let go
    of its own: the runner's lock holds a folder no longer there, and it makes another."""
    made: list[Path] = []
    mkdtemp = tempfile.mkdtemp
    real_flock = fcntl.flock

    def racing_mkdtemp(**kwargs):
        path = Path(mkdtemp(**kwargs))
        made.append(path)
        return str(path)

    def flock_after_a_sweep(fd, operation):
        real_flock(fd, operation)
        if len(made) == 1 and made[0].exists():
            os.rmdir(made[0])

    monkeypatch.setattr(runner_sockets.tempfile, "mkdtemp", racing_mkdtemp)
    monkeypatch.setattr(runner_sockets.fcntl, "flock", flock_after_a_sweep)
    folder = SocketsFolder.claim("sbx-racy", tmp_path)
    assert folder.path == made[1]
    folder.remove()


def test_a_runner_gives_up_when_every_folder_is_taken(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_sockets, "_lock", lambda fd: False)
    with pytest.raises(OSError, match="no sockets folder could be kept"):
        SocketsFolder.claim("sbx-never", tmp_path)


def test_the_sweep_holds_the_lock_until_the_folder_is_gone(tmp_path, monkeypatch):
    """Were the lock let go before rmtree, a runner could lock and keep the folder in between,
    and the rmtree would take a live runner's folder."""
    abandoned = tmp_path / f"{node_prefix()}sbx-dead-x"
    abandoned.mkdir()
    rmtree = shutil.rmtree
    held: list[bool] = []

    def checking_rmtree(path, **kwargs):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(False)
        except BlockingIOError:
            held.append(True)
        finally:
            os.close(fd)
        rmtree(path, **kwargs)

    monkeypatch.setattr(runner_sockets.shutil, "rmtree", checking_rmtree)
    sweep_abandoned(tmp_path)
    assert held == [True]
    assert not abandoned.exists()


def test_the_sweep_skips_a_fifo_without_blocking(tmp_path):
    """Anyone can make a FIFO by the name in /tmp; opened as a file it would block the sweep,
    and with it every runner's start, until someone opened it for writing."""
    fifo = tmp_path / f"{node_prefix()}fifo"
    os.mkfifo(fifo)
    sweep = threading.Thread(target=sweep_abandoned, args=(tmp_path,), daemon=True)
    sweep.start()
    sweep.join(5)
    blocked = sweep.is_alive()
    if blocked:  # let it go: a writer unblocks the reader's open
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        sweep.join(5)
    assert not blocked
    assert fifo.exists()


def test_the_sweep_never_locks_a_folder_through_a_link(tmp_path, monkeypatch):
    """Nothing reached through a link is even locked (rmtree's own refusal comes later)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / f"{node_prefix()}sbx-link").symlink_to(victim)
    locked: list[int] = []
    lock = runner_sockets._lock

    def recording_lock(fd):
        locked.append(os.fstat(fd).st_ino)
        return lock(fd)

    monkeypatch.setattr(runner_sockets, "_lock", recording_lock)
    sweep_abandoned(tmp_path)
    assert victim.stat().st_ino not in locked
    assert victim.is_dir()


def test_a_folder_swept_before_it_was_opened_is_given_up(tmp_path, monkeypatch):
    made: list[Path] = []
    mkdtemp = tempfile.mkdtemp

    def swept_at_once(**kwargs):
        path = Path(mkdtemp(**kwargs))
        made.append(path)
        if len(made) == 1:
            os.rmdir(path)  # a sweep took it before the runner's open
        return str(path)

    monkeypatch.setattr(runner_sockets.tempfile, "mkdtemp", swept_at_once)
    folder = SocketsFolder.claim("sbx-racy", tmp_path)
    assert folder.path == made[1]
    folder.remove()


def test_without_locks_folders_are_kept_and_never_swept(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runner_sockets.fcntl, "flock", no_locks)
    first = SocketsFolder.claim("sbx-one", tmp_path)
    second = SocketsFolder.claim("sbx-two", tmp_path)
    assert first.path.is_dir() and second.path.is_dir()
    first.remove()
    second.remove()


def test_a_world_writable_parent_that_is_not_sticky_is_refused(tmp_path):
    """There anyone could swap a checked folder for another before its removal."""
    parent = tmp_path / "open"
    parent.mkdir()
    parent.chmod(0o777)
    with pytest.raises(OSError, match="not sticky"):
        SocketsFolder.claim("sbx-x", parent)
    parent.chmod(0o1777)
    SocketsFolder.claim("sbx-x", parent).remove()


def test_a_failing_sweep_does_not_stop_a_runner(tmp_path, monkeypatch):
    def failing(parent):
        raise PermissionError(errno.EACCES, "denied")

    monkeypatch.setattr(runner_sockets, "sweep_abandoned", failing)
    folder = SocketsFolder.claim("sbx-x", tmp_path)
    assert folder.path.is_dir()
    folder.remove()


# Another user of the node: lists the shared temporary directory and tries every socket it
# can name in every folder there, and in the folder under it (a name it can guess, in a
# folder it may enter without listing it); prints those it connected to.
_NEIGHBOUR = """
import os, socket, sys
names = ("validate-http.sock", "grader.sock", "egress-proxy.sock")
for entry in os.listdir(sys.argv[1]):
    folder = os.path.join(sys.argv[1], entry)
    for where in (folder, os.path.join(folder, "sockets")):
        for name in names:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(os.path.join(where, name))
                print(os.path.join(where, name))
            except OSError:
                pass
            finally:
                s.close()
"""


async def test_another_user_of_the_node_cannot_reach_a_live_sandboxs_sockets(tmp_path, monkeypatch):
    require_or_skip(os.geteuid() == 0, "root (to act as another user)", "MLEB_REQUIRE_SLURM")
    shared = Path(tempfile.mkdtemp(prefix="mleb-test-tmp-", dir="/tmp"))
    shared.chmod(0o1777)  # like the node's /tmp, which every user can list
    monkeypatch.setattr(runner_sockets.tempfile, "gettempdir", lambda: str(shared))
    job = tmp_path / "job"
    job.mkdir()
    endpoints = NodeEndpoints(RunnerFiles(job), RunnerOptions(grader_addr="127.0.0.1:9"))
    token = jwt.encode({"comp": "comp"}, "k" * 32, algorithm="HS256")
    spec = LaunchSpec(
        sandbox_id="sbx-victim",
        competition_id="comp",
        image="img",
        command=[],
        env={"MLEB_SANDBOX_TOKEN": token},
        cpus=1,
        memory_bytes=1 << 30,
        shm_bytes=0,
        pids_limit=64,
        gpu_uuids=[],
        network=NetworkMode.ALLOWLIST,
        allowed_hosts=["example.com"],
        layout=host_layout(tmp_path / "sandbox"),
        mlebench_compat=False,
    )
    try:
        spec = await endpoints.open(spec)
        assert (spec.layout.sockets_dir / "validate-http.sock").exists()
        assert (spec.layout.sockets_dir / "egress-proxy.sock").exists()
        neighbour = subprocess.run(
            [sys.executable, "-I", "-c", _NEIGHBOUR, str(shared)],
            preexec_fn=lambda: (os.setgroups([]), os.setgid(65534), os.setuid(65534)),
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/",
        )
        assert neighbour.returncode == 0, neighbour.stderr
        assert neighbour.stdout == "", f"another user reached: {neighbour.stdout.split()}"
    finally:
        await endpoints.close()
        shutil.rmtree(shared, ignore_errors=True)
