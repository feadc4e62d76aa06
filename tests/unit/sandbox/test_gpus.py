"""The GPU inventory against a fake `pynvml` (this machine and CI have no GPU)."""

from __future__ import annotations

import threading

import pynvml
import pytest

from services.sandbox.gpus.inventory import GpuInventory, MigDeviceInfo
from services.sandbox.gpus.simulated_nvml import (
    GIB,
    SimulatedGpu,
    SimulatedMig,
    SimulatedNvml,
    gpu_uuid,
    h100s,
)

DBE = pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR
SBE = pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS


def inventory(*gpus: SimulatedGpu, **options) -> tuple[GpuInventory, SimulatedNvml]:
    fake = SimulatedNvml(list(gpus), **options)
    return GpuInventory("node-a", nvml=fake), fake


def test_several_gpus_are_listed_with_memory_utilization_and_driver():
    gpus = h100s(4)
    gpus[2].memory_used, gpus[2].utilization = 3 * GIB, 57
    snapshot = inventory(*gpus, driver_version="555.42.06")[0].snapshot()
    assert snapshot.node == "node-a" and snapshot.nvml_available
    assert snapshot.driver_version == "555.42.06"
    assert [(g.index, g.uuid) for g in snapshot.gpus] == [(i, gpu_uuid(i)) for i in range(4)]
    third = snapshot.gpus[2]
    assert third.name == "NVIDIA H100 80GB HBM3" and third.memory_total_bytes == 80 * GIB
    assert (third.memory_used_bytes, third.utilization_percent) == (3 * GIB, 57)
    assert all(g.health == "healthy" and g.health_notes == [] for g in snapshot.gpus)
    assert all(not g.mig_enabled and g.mig_devices == [] for g in snapshot.gpus)


@pytest.mark.parametrize(
    ("gpu", "health", "note"),
    [
        (
            SimulatedGpu("GPU-ecc", volatile_uncorrected_ecc=2),
            "unhealthy",
            "2 uncorrected ECC error",
        ),
        (
            SimulatedGpu("GPU-remap-failed", remapped_rows=(0, 1, 0, 1)),
            "unhealthy",
            "remapping failed",
        ),
        (
            SimulatedGpu("GPU-remap-pending", remapped_rows=(3, 0, 1, 0)),
            "degraded",
            "remapping pend",
        ),
        (
            SimulatedGpu("GPU-retire-pending", retirement_pending=True),
            "degraded",
            "retirement pend",
        ),
        (
            SimulatedGpu(
                "GPU-lost", errors={"nvmlDeviceGetMemoryInfo": pynvml.NVMLError_GpuIsLost}
            ),
            "unhealthy",
            "GPU is lost: reset or replace",
        ),
        (
            SimulatedGpu(
                "GPU-hidden", errors={"nvmlDeviceGetMigMode": pynvml.NVMLError_NoPermission}
            ),
            "degraded",
            "could not read MIG mode: Insufficient Permissions",
        ),
    ],
    ids=lambda v: v.uuid if isinstance(v, SimulatedGpu) else None,
)
def test_health_is_the_worst_finding_with_a_note(gpu, health, note):
    [found] = inventory(gpu)[0].snapshot().gpus
    assert found.health == health
    assert any(note in n for n in found.health_notes), found.health_notes


def test_findings_add_up_and_counts_are_reported():
    gpu = SimulatedGpu(
        "GPU-worn",
        volatile_uncorrected_ecc=1,
        retired_pages={SBE: 3, DBE: 2},
        retirement_pending=True,
    )
    [found] = inventory(gpu)[0].snapshot().gpus
    assert (found.uncorrected_ecc_errors, found.retired_pages) == (1, 5)
    assert found.health == "unhealthy" and len(found.health_notes) == 2


def test_retired_pages_alone_are_history_not_a_problem():
    [found] = inventory(SimulatedGpu("GPU-old", retired_pages={SBE: 4}))[0].snapshot().gpus
    assert found.health == "healthy" and found.retired_pages == 4 and found.health_notes == []


def test_fields_the_gpu_does_not_report_are_left_out_not_errors():
    consumer = SimulatedGpu("GPU-geforce", name="NVIDIA GeForce RTX 4090").not_supporting(
        "nvmlDeviceGetTotalEccErrors",
        "nvmlDeviceGetRetiredPages",
        "nvmlDeviceGetRetiredPagesPendingStatus",
        "nvmlDeviceGetRemappedRows",
        "nvmlDeviceGetMigMode",
        "nvmlDeviceGetUtilizationRates",
    )
    [found] = inventory(consumer)[0].snapshot().gpus
    assert found.health == "healthy" and found.health_notes == []
    assert (found.uncorrected_ecc_errors, found.retired_pages, found.utilization_percent) == (
        0,
        0,
        0,
    )
    assert found.memory_total_bytes == 80 * GIB and not found.mig_enabled


def test_a_gpu_that_cannot_be_opened_is_listed_unhealthy_without_a_uuid():
    broken = SimulatedGpu("GPU-gone", errors={"nvmlDeviceGetUUID": pynvml.NVMLError_GpuIsLost})
    fine = SimulatedGpu("GPU-fine")
    snapshot = inventory(broken, fine)[0].snapshot()
    assert [(g.index, g.uuid, g.health) for g in snapshot.gpus] == [
        (0, "", "unhealthy"),
        (1, "GPU-fine", "healthy"),
    ]
    assert snapshot.gpus[0].health_notes == ["cannot be opened: GPU is lost"]


def test_mig_devices_are_listed_when_mig_is_on():
    migs = [
        SimulatedMig("MIG-aaaa", slot=0),
        SimulatedMig("MIG-bbbb", "NVIDIA H100 MIG 3g.40gb", 40 * GIB, slot=3),
    ]
    gpu = SimulatedGpu("GPU-mig", mig=migs)
    inv, _fake = inventory(gpu, SimulatedGpu("GPU-plain"))
    mig_gpu, plain = inv.snapshot().gpus
    assert mig_gpu.mig_enabled and not plain.mig_enabled
    assert mig_gpu.mig_devices == [
        MigDeviceInfo("MIG-aaaa", "NVIDIA H100 80GB HBM3 MIG 1g.10gb", 10 * GIB),
        MigDeviceInfo("MIG-bbbb", "NVIDIA H100 MIG 3g.40gb", 40 * GIB),
    ]
    # MIG devices report no utilisation; their memory is still sampled.
    migs[1].memory_used = 5 * GIB
    assert inv.sample(["MIG-bbbb"]) == {"MIG-bbbb": (0, 5 * GIB)}


@pytest.mark.parametrize(
    "error", [pynvml.NVMLError_LibraryNotFound, pynvml.NVMLError_DriverNotLoaded]
)
def test_without_a_driver_there_is_an_empty_inventory_not_an_error(error):
    inv, fake = inventory(*h100s(2), init_error=error)
    snapshot = inv.snapshot()
    assert (snapshot.nvml_available, snapshot.driver_version, snapshot.gpus) == (False, "", [])
    assert inv.sample([gpu_uuid(0)]) == {}
    # Not remembered: a driver loaded later is picked up without a restart.
    fake.init_error = None
    assert inv.snapshot().nvml_available


def test_the_real_pynvml_never_raises():
    snapshot = GpuInventory("node-a").snapshot()
    assert snapshot.nvml_available or snapshot.gpus == []


def test_nvml_is_initialised_once_for_all_threads_and_inventories():
    fake = SimulatedNvml(h100s(4))
    inventories = [GpuInventory("node-a", nvml=fake) for _ in range(2)]
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def work(inv: GpuInventory) -> None:
        try:
            start.wait()
            for _ in range(20):
                assert len(inv.snapshot().gpus) == 4
                assert len(inv.sample([gpu_uuid(1), gpu_uuid(3)])) == 2
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(inventories[i % 2],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert fake.calls["nvmlInit"] == 1 and fake.calls["nvmlShutdown"] == 0


def test_a_sample_is_two_nvml_reads_per_gpu_and_skips_unknown_uuids():
    gpus = h100s(3)
    gpus[0].utilization, gpus[0].memory_used = 91, 7 * GIB
    gpus[2].utilization, gpus[2].memory_used = 12, 1 * GIB
    inv, fake = inventory(*gpus)
    wanted = [gpu_uuid(0), gpu_uuid(2), "GPU-not-here"]
    assert inv.sample(wanted) == {gpu_uuid(0): (91, 7 * GIB), gpu_uuid(2): (12, 1 * GIB)}
    fake.calls.clear()
    inv.sample(wanted[:2])
    # Handles are kept, so a sample is only the two reads per GPU.
    assert dict(fake.calls) == {"nvmlDeviceGetMemoryInfo": 2, "nvmlDeviceGetUtilizationRates": 2}


def test_a_driver_failing_after_init_gives_an_empty_inventory():
    inv, fake = inventory(*h100s(2))
    assert len(inv.snapshot().gpus) == 2
    fake.errors = {"nvmlDeviceGetCount": pynvml.NVMLError_DriverNotLoaded}
    snapshot = inv.snapshot()
    assert (snapshot.nvml_available, snapshot.gpus) == (False, [])
