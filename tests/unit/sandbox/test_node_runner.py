"""The node runner's reading of the scheduler's GPU allocation, and the spec it launches."""

from __future__ import annotations

import asyncio
import socket

import pytest

from services.sandbox.gpus.simulated_nvml import SimulatedNvml, h100s
from services.sandbox.node.runner import (
    STOP_POLL_S,
    AllocationError,
    Runner,
    allocated_gpus,
    gpu_names,
    with_gpus,
)
from services.sandbox.node.runner_files import RunnerFiles, RunnerOptions
from tests.unit.sandbox.test_node_runner_files import make_spec


@pytest.mark.parametrize(
    ("env", "wanted", "indices"),
    [
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "3,1"}, 2, [1, 3]),
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": " 2 , ", "CUDA_VISIBLE_DEVICES": "0"}, 1, [2]),
        # Slurm's global ids win over the ones its cgroup renumbers from 0.
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "5", "CUDA_VISIBLE_DEVICES": "0"}, 1, [5]),
        # Outside Slurm, the scheduler's CUDA_VISIBLE_DEVICES.
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, 2, [0, 1]),
        # A job without GPUs gets none, whatever the node says.
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, 0, []),
        ({"SLURM_JOB_GPUS": "0"}, 0, []),
        ({}, 0, []),
    ],
)
def test_the_allocated_gpus(env, wanted, indices):
    assert allocated_gpus(env, wanted) == indices


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, 1),
        # In a Slurm job, a renumbered CUDA_VISIBLE_DEVICES alone could name another job's GPU.
        ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0"}, 1),
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "0,0"}, 2),  # one GPU named twice is one GPU
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "0,1"}, 1),
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "NoDevFiles"}, 1),
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "-1"}, 1),
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "²"}, 1),  # a digit to str.isdigit, not to int()
        ({"CUDA_VISIBLE_DEVICES": "GPU-8d3c1f0e-0000-0000-0000-000000000000"}, 1),
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_GPUS": "1" * 40}, 1),
    ],
)
def test_an_allocation_that_does_not_match_is_refused(env, wanted):
    with pytest.raises(AllocationError):
        allocated_gpus(env, wanted)


def test_device_files_stand_in_for_gpus_and_the_agent_counts_them_from_zero(tmp_path):
    spec = make_spec(tmp_path, env={"A": "1"})
    options = RunnerOptions(gpu_device_dir="/srv/fake-dev")
    placed = with_gpus(spec, [1, 3], options)
    assert placed.gpu_devices == ["/srv/fake-dev/nvidia1", "/srv/fake-dev/nvidia3"]
    assert placed.env == {"A": "1", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert placed.gpu_uuids == [] and spec.env == {"A": "1"}
    host = socket.gethostname()
    assert gpu_names(placed, [1, 3]) == (f"{host}:nvidia1", f"{host}:nvidia3")


def test_slurm_indices_are_device_numbers_not_nvml_indices(tmp_path):
    """NVML orders GPUs by PCI bus, the driver numbers /dev/nvidiaN its own way: Slurm's
    index 0 is /dev/nvidia0, here NVML's second GPU."""
    gpus = h100s(3)
    for gpu, minor in zip(gpus, (1, 0, 2), strict=True):
        gpu.minor_number = minor
    nvml = SimulatedNvml(gpus)
    placed = with_gpus(make_spec(tmp_path), [0, 2], RunnerOptions(), nvml=nvml)
    assert placed.gpu_uuids == [gpus[1].uuid, gpus[2].uuid]
    assert gpu_names(placed, [0, 2]) == (gpus[1].uuid, gpus[2].uuid)
    with pytest.raises(AllocationError, match="/dev/nvidia3"):
        with_gpus(make_spec(tmp_path), [3], RunnerOptions(), nvml=SimulatedNvml(h100s(3)))


def test_no_gpus_leave_the_spec_as_it_is(tmp_path):
    spec = make_spec(tmp_path)
    assert with_gpus(spec, [], RunnerOptions()) is spec


async def test_the_runner_stops_on_the_services_stop_file_without_a_signal(tmp_path):
    """The service writes stop.json before it asks Slurm to signal the runner; a controller
    that is away must not keep the agent running."""
    files = RunnerFiles(tmp_path)
    runner = Runner(files, backend=None)  # type: ignore[arg-type]  # only the files are used
    waiting = asyncio.create_task(runner._until_stopped())
    await asyncio.sleep(0.2)
    assert not waiting.done()
    files.write(files.stop, {"grace_s": 1.0})
    await asyncio.wait_for(waiting, STOP_POLL_S + 2)


async def test_the_runner_stops_on_a_signal(tmp_path):
    runner = Runner(RunnerFiles(tmp_path), backend=None)  # type: ignore[arg-type]
    waiting = asyncio.create_task(runner._until_stopped())
    runner.request_stop()
    await asyncio.wait_for(waiting, 1)
