"""The folder a sandbox service shares with its node runner: whole files, read only when
plain, bounded, and never through a link; the spec deleted as the runner reads it; output
lines the service can always read to the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from services.sandbox.backends.base import LaunchSpec, NetworkMode, OutputLine, OutputStream
from services.sandbox.node.layout import host_layout
from services.sandbox.node.runner_files import (
    MAX_FILE_BYTES,
    MAX_LINE_BYTES,
    Ended,
    JobRecord,
    RunnerFiles,
    RunnerOptions,
    Sample,
    Started,
    bounded_output_line,
    parse_output_line,
)


def make_spec(tmp_path: Path, **changes) -> LaunchSpec:
    values = dict(
        sandbox_id="sbx-0123456789abcdef0123",
        competition_id="spaceship-titanic",
        image="agent:latest",
        command=["python", "run.py"],
        env={"MLEB_SANDBOX_TOKEN": "secret-token", "API_KEY": "k"},
        cpus=1.5,
        memory_bytes=3 << 30,
        shm_bytes=64 << 20,
        pids_limit=512,
        gpu_uuids=[],
        network=NetworkMode.ALLOWLIST,
        allowed_hosts=["pypi.org"],
        layout=host_layout(tmp_path / "sandbox", tmp_path / "public"),
        mlebench_compat=True,
        labels={"mleb.instance": "i1"},
        time_limit_s=3600.0,
        tmp_bytes=1 << 20,
        gpu_count=2,
        stop_grace_s=7.0,
    )
    values.update(changes)
    return LaunchSpec(**values)


@pytest.fixture
def files(tmp_path: Path) -> RunnerFiles:
    folder = tmp_path / "job"
    folder.mkdir(mode=0o700)
    return RunnerFiles(folder)


def test_the_spec_travels_whole_private_and_is_gone_once_taken(tmp_path, files):
    spec = make_spec(tmp_path)
    options = RunnerOptions(sidecar_image="side:1", gpu_device_dir="/dev", max_output_bytes=9)
    files.write_spec(spec, options)
    assert files.spec.stat().st_mode & 0o777 == 0o600
    assert not list(files.folder.glob(".*.part"))
    assert files.take_spec() == (spec, options)
    assert not files.spec.exists()
    with pytest.raises(FileNotFoundError):
        files.take_spec()


def test_each_record_round_trips(files):
    files.write_started(Started("c0ffee", "sha256:ab", "node7", ("node7:nvidia1",)))
    files.write_sample(Sample(1.5, 1 << 20, None))
    files.write_exit(Ended(3, True, "", "", stopped_by_scheduler=True))
    files.write_job(JobRecord("mleb:n/i", "42"))
    files.write(files.stop, {"grace_s": 2.5})
    assert files.read_started() == Started("c0ffee", "sha256:ab", "node7", ("node7:nvidia1",))
    assert files.read_sample() == Sample(1.5, 1 << 20, None)
    assert files.read_exit() == Ended(3, True, "", "", stopped_by_scheduler=True)
    assert files.read_job() == JobRecord("mleb:n/i", "42")
    assert files.stop_grace() == 2.5


def test_absent_files_read_as_none(files):
    assert files.read_started() is None
    assert files.read_exit() is None
    assert files.read_sample() is None
    assert files.read_job() is None
    assert files.stop_grace() is None


def test_a_write_replaces_a_link_and_never_writes_through_it(tmp_path, files):
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    files.exit.symlink_to(target)
    # A link left where the part file goes is removed, not followed.
    (files.folder / ".exit.json.part").symlink_to(tmp_path / "planted")
    files.write_exit(Ended(0))
    assert target.read_text() == "{}"
    assert not (tmp_path / "planted").exists()
    assert not files.exit.is_symlink() and files.read_exit() == Ended(0)


def test_links_fifos_and_oversized_files_are_refused_on_read(tmp_path, files):
    target = tmp_path / "started.json"
    target.write_text(json.dumps({"ref": "r", "image_digest": "", "placement": "", "gpus": []}))
    files.started.symlink_to(target)
    with pytest.raises(OSError):
        files.read_started()
    os.mkfifo(files.exit)  # would block a plain open forever
    with pytest.raises(ValueError, match="not a plain file"):
        files.read_exit()
    files.usage.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    with pytest.raises(ValueError, match="larger than"):
        files.read_sample()
    files.job.write_text("[]")
    with pytest.raises(ValueError, match="not a JSON object"):
        files.read_job()


@pytest.mark.parametrize(
    ("name", "record"),
    [
        # An exit code as text would read as an exit of its own: refused instead.
        ("exit", {"exit_code": "0"}),
        ("exit", {"exit_code": True}),
        ("exit", {"exit_code": 0, "oom_killed": "false"}),
        ("exit", {"exit_code": 0, "surprise": 1}),
        ("started", {"ref": 1, "image_digest": "", "placement": "", "gpus": []}),
        ("started", {"ref": "r", "image_digest": "", "placement": "", "gpus": [], "at": "now"}),
        ("usage", {"cpu_seconds": "1"}),
        ("usage", {"writable_layer_bytes": 1.5}),
        ("job", {"comment": None}),
    ],
)
def test_records_of_another_shape_are_refused(files, name, record):
    getattr(files, name).write_text(json.dumps(record))
    read = {"exit": files.read_exit, "started": files.read_started, "usage": files.read_sample}
    with pytest.raises(TypeError):
        read.get(name, files.read_job)()


def test_the_output_opens_only_as_a_plain_file(tmp_path, files):
    (tmp_path / "elsewhere").write_bytes(b"")
    files.output.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        files.open_output()
    files.output.unlink()
    os.mkfifo(files.output)  # a plain open would block the reader for ever
    with pytest.raises(ValueError, match="not a plain file"):
        files.open_output()


@pytest.mark.parametrize("char", ["a", "\x00", "é", "\U0001f600", "\ud800"])
def test_a_cut_output_line_always_fits_what_the_service_reads(char):
    line = OutputLine(OutputStream.STDOUT, char * (MAX_LINE_BYTES + 10), 12.5)
    record = bounded_output_line(line)
    assert len(record) <= MAX_LINE_BYTES and record.endswith(b"\n")
    assert record.count(b"\n") == 1
    parsed = parse_output_line(record)
    assert parsed.text.endswith("[node runner: line cut]") and parsed.time == 12.5


def test_a_short_output_line_is_kept_as_it_is():
    line = OutputLine(OutputStream.STDERR, "multi\nline\ttext", 1.0)
    assert parse_output_line(bounded_output_line(line)) == line
