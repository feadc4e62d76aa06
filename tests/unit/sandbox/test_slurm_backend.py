"""The Slurm backend's pure parts: squeue's answers as parsed, the sbatch options a sandbox
becomes, its settings. The backend against a real Slurm is in
tests/integration/cluster/test_slurm_backend.py."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgumentError
from services.sandbox.backends.base import BackendError
from services.sandbox.backends.slurm import commands
from services.sandbox.backends.slurm.backend import SlurmBackend, SlurmSettings, _whole_lines
from services.sandbox.config import SandboxSettings
from services.sandbox.node.runner_files import MAX_LINE_BYTES, RunnerFiles
from tests.unit.sandbox.test_node_runner_files import make_spec


def test_squeue_lines_parse_with_the_name_last_whatever_it_holds():
    out = (
        "17|RUNNING|None|mleb:n1/default|mleb-sbx-1\n"
        "18|PENDING|Resources|mleb:n1/default|mleb-a|b|c\n"
        "19|PENDING|PartitionConfig||mleb-sbx-2\n"
        "garbage without separators\n"
        "\n"
    )
    jobs = commands._parse(out)
    assert [j.job_id for j in jobs] == ["17", "18", "19"]
    assert jobs[0] == commands.QueuedJob("17", "RUNNING", "None", "mleb:n1/default", "mleb-sbx-1")
    assert jobs[1].name == "mleb-a|b|c" and jobs[1].comment == "mleb:n1/default"
    assert not jobs[0].ended and not jobs[0].never_starts
    assert not jobs[1].never_starts  # waiting for resources that exist
    assert jobs[2].never_starts and jobs[2].comment == ""


@pytest.mark.parametrize("state", sorted(commands.ENDED_STATES))
def test_ended_states(state):
    job = commands.QueuedJob("1", state, "None", "", "mleb-x")
    assert job.ended and not job.never_starts


def backend(tmp_path, **slurm) -> SlurmBackend:
    settings = SandboxSettings(
        work_dir=tmp_path / "work",
        node="n1",
        instance_id="i2",
        max_log_bytes=1 << 20,
        stop_grace_s=7.0,
    )
    return SlurmBackend(settings, SlurmSettings(**{"grader_addr": "grader:50052", **slurm}))


@pytest.mark.parametrize(
    ("field", "value"), [("node", "a|b"), ("instance_id", "x y"), ("node", "")]
)
def test_a_node_or_instance_its_squeue_comment_could_not_carry_is_refused(tmp_path, field, value):
    settings = SandboxSettings(work_dir=tmp_path, **{field: value})
    with pytest.raises(InvalidArgumentError, match="only on Slurm"):
        SlurmBackend(settings, SlurmSettings(grader_addr="grader:50052"))


def test_the_grader_as_the_nodes_reach_it_is_required(tmp_path):
    with pytest.raises(InvalidArgumentError, match="MLEB_SLURM_GRADER_ADDR"):
        backend(tmp_path, grader_addr="")


def test_the_sbatch_options_of_a_sandbox(tmp_path, monkeypatch):
    for name in ("PYTHONPATH", "DOCKER_HOST", "DOCKER_CONFIG", "LANG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", "/usr/bin")
    monkeypatch.setenv("HOME", "/root")
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/docker.sock")
    monkeypatch.setenv("MLEB_AUTH_SECRET", "k:secret")
    slurm = backend(tmp_path, partition="gpu", sbatch_args=("--account=lab", "--qos=eval"))
    spec = make_spec(tmp_path, cpus=1.5, memory_bytes=(1 << 30) + 1, time_limit_s=3601.0)
    files = RunnerFiles(tmp_path / "work" / "slurm-jobs" / spec.sandbox_id)
    options = slurm._sbatch_options(spec, files)
    assert options == [
        f"--job-name=mleb-{spec.sandbox_id}",
        "--comment=mleb:n1/i2",
        f"--output={files.folder}/slurm.out",
        f"--chdir={files.folder}",
        # Only what finds Python, the runner and the engine: never the service's secrets.
        "--export=PATH,HOME,DOCKER_HOST",
        "--no-requeue",
        "--cpus-per-task=2",
        # The agent's memory, one byte over 1 GiB, plus the runner's 256 MiB, in whole MiB.
        "--mem=1281M",
        # 3601 s + 7 s of grace + 300 s of margin, in whole minutes.
        "--time=66",
        "--gres=gpu:2",
        "--partition=gpu",
        "--account=lab",
        "--qos=eval",
    ]


def test_a_sandbox_without_gpus_or_partition_asks_for_neither(tmp_path):
    spec = make_spec(tmp_path, gpu_count=0, cpus=0.25)
    options = backend(tmp_path)._sbatch_options(spec, RunnerFiles(tmp_path))
    assert "--cpus-per-task=1" in options
    assert not [o for o in options if o.startswith(("--gres", "--partition"))]


@pytest.mark.parametrize("interval", ["0", "0.0", "-1", "nan", "inf", "soon"])
def test_the_poll_interval_must_be_a_positive_number_of_seconds(monkeypatch, interval):
    """Zero would make every poll loop spin on squeue and the job folders."""
    monkeypatch.setenv("MLEB_SLURM_POLL_INTERVAL_S", interval)
    with pytest.raises(InvalidArgumentError, match="MLEB_SLURM_POLL_INTERVAL_S"):
        SlurmSettings.from_env()


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLEB_SLURM_PARTITION", "p")
    monkeypatch.setenv("MLEB_SLURM_SBATCH_ARGS", "--account='my lab' --qos=q")
    monkeypatch.setenv("MLEB_SLURM_RUNNER", "/opt/mleb/bin/python -m services.sandbox.node.runner")
    monkeypatch.setenv("MLEB_SLURM_POLL_INTERVAL_S", "0.5")
    monkeypatch.setenv("MLEB_SLURM_FS_LAG_S", "5")
    found = SlurmSettings.from_env()
    assert found.partition == "p"
    assert found.sbatch_args == ("--account=my lab", "--qos=q")
    assert found.runner == ("/opt/mleb/bin/python", "-m", "services.sandbox.node.runner")
    assert (found.poll_interval_s, found.fs_lag_s) == (0.5, 5.0)


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf"])
def test_a_bad_number_of_seconds_names_its_variable(monkeypatch, raw):
    monkeypatch.setenv("MLEB_SLURM_FS_LAG_S", raw)
    with pytest.raises(InvalidArgumentError, match="MLEB_SLURM_FS_LAG_S"):
        SlurmSettings.from_env()


def test_output_is_read_in_whole_lines_and_a_partial_one_is_read_again(tmp_path):
    path = tmp_path / "output.jsonl"
    path.write_bytes(b"a\nb\nc\npart")
    with open(path, "rb") as source:
        assert _whole_lines(source, most=2) == ([b"a\n", b"b\n"], False)
        assert _whole_lines(source) == ([b"c\n"], True)
        with open(path, "ab") as out:
            out.write(b"ial\n")
        assert _whole_lines(source) == ([b"partial\n"], True)
        assert _whole_lines(source) == ([], True)


def test_a_line_no_runner_writes_is_an_error_not_a_wait(tmp_path):
    path = tmp_path / "output.jsonl"
    path.write_bytes(b"x" * (MAX_LINE_BYTES + 1))
    with open(path, "rb") as source, pytest.raises(BackendError, match="over"):
        _whole_lines(source)
