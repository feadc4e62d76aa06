"""scripts/dev_slurm.sh: a real one-node Slurm cluster whose two fake GPUs Slurm hands out."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.dev_clusters import (
    DevCluster,
    alive,
    new_state_dir,
    processes_touching,
    run_script,
    start,
    stop,
)

Submit = Callable[..., str]


def slurm(cluster: DevCluster, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=cluster.env, capture_output=True, text=True, timeout=60, check=False
    )


def job_field(cluster: DevCluster, job: str, field: str) -> str:
    shown = slurm(cluster, "scontrol", "-o", "show", "job", job)
    assert shown.returncode == 0, shown.stderr
    match = re.search(rf"\b{field}=(\S*)", shown.stdout)
    assert match, shown.stdout
    return match.group(1)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)


def wait_state(cluster: DevCluster, job: str, state: str, timeout: float = 30) -> None:
    wait_for(lambda: job_field(cluster, job, "JobState") == state, f"job {job} {state}", timeout)


def submitter(cluster: DevCluster) -> tuple[Submit, list[str]]:
    submitted: list[str] = []

    def submit(script: str, *options: str) -> str:
        result = slurm(
            cluster, "sbatch", "--parsable", "--output=/dev/null", *options, "--wrap", script
        )
        assert result.returncode == 0, result.stderr
        submitted.append(result.stdout.strip())
        return submitted[-1]

    return submit, submitted


@pytest.fixture
def submit(slurm_cluster: DevCluster) -> Iterator[Submit]:
    """sbatch --wrap SCRIPT [OPTIONS]; what a test submitted is cancelled after it."""
    submit, submitted = submitter(slurm_cluster)
    yield submit
    if submitted:
        slurm(slurm_cluster, "scancel", *submitted)


def held_gpu_job(submit: Submit, folder: Path, name: str) -> str:
    """A one-GPU job that writes the devices it got to folder/name, then waits for
    folder/name.release."""
    out, release = folder / name, folder / f"{name}.release"
    return submit(
        f'echo "$CUDA_VISIBLE_DEVICES" > {out}; while [ ! -e {release} ]; do sleep 0.2; done',
        "--gres=gpu:1",
    )


def sleeper(submit: Submit, pid_file: Path, *options: str) -> str:
    """A job whose process writes its pid to pid_file and sleeps."""
    return submit(f"echo $$ > {pid_file}; exec sleep 600", *options)


@pytest.fixture(scope="module", autouse=True)
def time_limited(slurm_cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Submitted before the other tests: Slurm counts limits in minutes and checks them about
    every 30 s, so this job runs out 60 to 90 s after it starts, while they run."""
    pid_file = tmp_path_factory.mktemp("time-limit") / "pid"
    submit, _ = submitter(slurm_cluster)
    return sleeper(submit, pid_file, "--time=1"), pid_file


def test_start_prints_only_exports_and_the_node_has_two_gpus(slurm_cluster: DevCluster) -> None:
    assert set(slurm_cluster.exports) == {
        "SLURM_CONF",
        "MLEB_SLURM_PARTITION",
        "MLEB_SLURM_GPU_DEVICE_DIR",
    }
    assert Path(slurm_cluster.exports["SLURM_CONF"]).parent == slurm_cluster.state_dir
    node = slurm(slurm_cluster, "sinfo", "-h", "-o", "%P %G")
    assert node.stdout.split() == [
        f"{slurm_cluster.exports['MLEB_SLURM_PARTITION']}*",
        "gpu:fake:2",
    ]


def test_start_again_reuses_the_running_cluster(slurm_cluster: DevCluster) -> None:
    pids = {d: slurm_cluster.pid(d) for d in ("munged", "slurmctld", "slurmd")}
    again = run_script("dev_slurm.sh", "start", slurm_cluster.state_dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout == slurm_cluster.stdout
    assert {d: slurm_cluster.pid(d) for d in pids} == pids
    assert all(alive(pid) for pid in pids.values())


def test_srun_gets_the_gpus_it_asks_for(slurm_cluster: DevCluster) -> None:
    one = slurm(slurm_cluster, "srun", "--gres=gpu:1", "printenv", "CUDA_VISIBLE_DEVICES")
    assert one.stdout.strip() in {"0", "1"}, one.stderr
    both = slurm(slurm_cluster, "srun", "--gres=gpu:2", "printenv", "CUDA_VISIBLE_DEVICES")
    assert both.stdout.strip() == "0,1", both.stderr
    none = slurm(slurm_cluster, "srun", "printenv", "CUDA_VISIBLE_DEVICES")
    assert none.returncode == 1 and none.stdout == "", "a job without GPUs was given some"


def test_more_gpus_than_the_node_has_are_refused(slurm_cluster: DevCluster) -> None:
    refused = slurm(slurm_cluster, "sbatch", "--gres=gpu:3", "--wrap", "true")
    assert refused.returncode != 0
    assert "Requested node configuration is not available" in refused.stderr


def test_two_gpu_jobs_get_different_devices_and_a_third_waits_for_one(
    slurm_cluster: DevCluster, submit: Submit, tmp_path: Path
) -> None:
    first, second = (held_gpu_job(submit, tmp_path, name) for name in ("first", "second"))
    for job in (first, second):
        wait_state(slurm_cluster, job, "RUNNING")
    wait_for(lambda: (tmp_path / "second").exists() and (tmp_path / "first").exists(), "devices")
    devices = {(tmp_path / name).read_text().strip() for name in ("first", "second")}
    assert devices == {"0", "1"}

    third = held_gpu_job(submit, tmp_path, "third")
    # A job without GPUs, submitted after it, runs: the node has CPUs to spare, so what holds
    # the third job back is the GPUs.
    wait_state(slurm_cluster, submit("sleep 600"), "RUNNING")
    wait_for(lambda: job_field(slurm_cluster, third, "Reason") == "Resources", "a verdict")
    assert job_field(slurm_cluster, third, "JobState") == "PENDING"

    (tmp_path / "first.release").touch()
    wait_state(slurm_cluster, first, "COMPLETED")
    wait_state(slurm_cluster, third, "RUNNING")
    wait_for(lambda: (tmp_path / "third").exists(), "the third job's devices")
    assert (tmp_path / "third").read_text() == (tmp_path / "first").read_text()


def test_scancel_ends_a_job_and_its_processes(
    slurm_cluster: DevCluster, submit: Submit, tmp_path: Path
) -> None:
    job = sleeper(submit, tmp_path / "pid")
    wait_state(slurm_cluster, job, "RUNNING")
    wait_for(lambda: (tmp_path / "pid").exists(), "the job's pid")
    pid = int((tmp_path / "pid").read_text())
    assert alive(pid)
    assert slurm(slurm_cluster, "scancel", job).returncode == 0
    wait_state(slurm_cluster, job, "CANCELLED")
    wait_for(lambda: not alive(pid), "end of the cancelled job's process")


def test_stop_ends_its_own_cluster_and_no_other(
    slurm_cluster: DevCluster, submit: Submit, tmp_path: Path
) -> None:
    other_job = sleeper(submit, tmp_path / "other-pid")
    try:
        second = start("dev_slurm.sh", new_state_dir("slurm"))
    except RuntimeError as error:
        pytest.fail(str(error))
    try:
        job = sleeper(submitter(second)[0], tmp_path / "pid")
        wait_state(second, job, "RUNNING")
        wait_for(lambda: (tmp_path / "pid").exists(), "the job's pid")
        pids = [second.pid(d) for d in ("munged", "slurmctld", "slurmd")]
        pids.append(int((tmp_path / "pid").read_text()))
    finally:
        stop(second)
    assert not [pid for pid in pids if alive(pid)]
    assert processes_touching(second.state_dir) == []
    assert not second.state_dir.exists()
    # The session's cluster, its job and its daemons are untouched.
    wait_state(slurm_cluster, other_job, "RUNNING")
    assert all(alive(slurm_cluster.pid(d)) for d in ("munged", "slurmctld", "slurmd"))


# Last: by now the job submitted first has run past its limit.
def test_the_time_limit_ends_a_job(slurm_cluster: DevCluster, time_limited: tuple) -> None:
    job, pid_file = time_limited
    assert job_field(slurm_cluster, job, "TimeLimit") == "00:01:00"
    wait_state(slurm_cluster, job, "TIMEOUT", timeout=150)
    assert not alive(int(pid_file.read_text()))
