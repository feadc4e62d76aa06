"""How a sandbox's GPUs reach the engine: a device request for real ones, names alone for
simulated ones (MLEB_SANDBOX_SIMULATED_GPUS), nothing without GPUs."""

from __future__ import annotations

from services.sandbox.backends.docker.backend import gpu_settings


def test_real_gpus_are_one_device_request_for_the_nvidia_runtime_by_uuid() -> None:
    uuids = ["GPU-11111111-2222-3333-4444-555555555555", "GPU-aaaaaaaa-2222-3333-4444-555555555555"]
    env, (request,) = gpu_settings(uuids)
    assert env == {}
    assert request == {
        "Driver": "nvidia", "Count": 0, "DeviceIDs": uuids, "Capabilities": [["gpu"]],
        "Options": {},
    }  # fmt: skip


def test_simulated_gpus_are_names_and_no_device() -> None:
    uuids = ["GPU-sim-0-00000000-0000-0000-0000-000000000000"]
    env, requests = gpu_settings(uuids)
    assert requests == []
    assert env == {"CUDA_VISIBLE_DEVICES": uuids[0], "NVIDIA_VISIBLE_DEVICES": uuids[0]}


def test_no_gpus_no_settings() -> None:
    assert gpu_settings([]) == ({}, [])
