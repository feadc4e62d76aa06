"""The node runner's sockets folders: a killed runner's is swept by the next runner, a live
one's never is, and the sweep never follows a link or touches what is not a runner's."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from services.sandbox.node import runner_sockets
from services.sandbox.node.runner_sockets import PREFIX, SocketsFolder, sweep_abandoned

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
    assert folder.path.is_dir() and folder.path.name.startswith(f"{PREFIX}sbx-next-")
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
    (tmp_path / f"{PREFIX}sbx-link").symlink_to(victim)
    (tmp_path / f"{PREFIX}sbx-file").write_text("not a folder")
    other = tmp_path / "mleb-sbx-test-1"  # a test fixture's, or anyone else's
    other.mkdir()

    sweep_abandoned(tmp_path)

    assert (victim / "precious").read_text() == "x"
    assert (tmp_path / f"{PREFIX}sbx-link").is_symlink()
    assert (tmp_path / f"{PREFIX}sbx-file").is_file()
    assert other.is_dir()


def test_another_users_folder_is_left(tmp_path, monkeypatch):
    theirs = tmp_path / f"{PREFIX}sbx-theirs"
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
