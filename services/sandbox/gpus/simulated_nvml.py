"""A simulated `pynvml` for machines without a GPU: the tests' only fake, and what
`MLEB_SANDBOX_SIMULATED_GPUS=<count>` serves in development (docs/gpus.md).

It implements the NVML functions services.sandbox.gpus.inventory calls, with pynvml's own constants
and exception classes, and raises what a real driver raises: NotSupported for a field the
GPU does not report, NotFound for an empty MIG slot, GpuIsLost for a GPU off the bus. Only
the device layer is simulated: inventory, leases, recovery and records run the real code.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml

GIB = 1 << 30


# CONTRACTS.md: simulated GPUs are GPU-sim-<n>-…; no NVIDIA UUID has that form (hex only).
SIMULATED_UUID_PREFIX = "GPU-sim-"


def gpu_uuid(index: int) -> str:
    """A hardware-like UUID, for tests that stand the simulation in for a real driver."""
    return f"GPU-{index:08d}-0000-4000-8000-{index:012d}"


def simulated_uuid(index: int) -> str:
    return f"{SIMULATED_UUID_PREFIX}{index}-0000-4000-8000-{index:012d}"


def is_simulated(uuid: str) -> bool:
    return uuid.startswith(SIMULATED_UUID_PREFIX)


@dataclass
class SimulatedMig:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3 MIG 1g.10gb"
    memory_total: int = 10 * GIB
    memory_used: int = 0
    # The slot it occupies; other slots are empty.
    slot: int = 0


@dataclass
class SimulatedGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    memory_total: int = 80 * GIB
    memory_used: int = 0
    utilization: int = 0
    volatile_uncorrected_ecc: int = 0
    retired_pages: dict[int, int] = field(default_factory=dict)  # cause -> count
    retirement_pending: bool = False
    # (corrected, uncorrected, pending, failure), as nvmlDeviceGetRemappedRows returns it.
    remapped_rows: tuple[int, int, int, int] = (0, 0, 0, 0)
    # Its /dev/nvidiaN number; None: its index, as on most nodes (not all: NVML orders by
    # PCI bus, the driver numbers devices in its own order).
    minor_number: int | None = None
    mig: list[SimulatedMig] | None = None  # None: MIG off; a list: MIG on with these devices
    max_mig_devices: int = 7
    # pynvml function name -> the error class it raises for this GPU.
    errors: dict[str, type] = field(default_factory=dict)

    def not_supporting(self, *functions: str) -> SimulatedGpu:
        self.errors.update(dict.fromkeys(functions, pynvml.NVMLError_NotSupported))
        return self


def h100s(count: int) -> list[SimulatedGpu]:
    """Healthy H100s as a data-centre node reports them: no page retirement (row remapping
    instead), MIG off."""
    return [
        SimulatedGpu(gpu_uuid(i)).not_supporting(
            "nvmlDeviceGetRetiredPages", "nvmlDeviceGetRetiredPagesPendingStatus"
        )
        for i in range(count)
    ]


class SimulatedNvml:
    """Use as `GpuInventory(node, nvml=SimulatedNvml(...))`, or patch it in for `pynvml`."""

    def __init__(
        self,
        gpus: list[SimulatedGpu] | None = None,
        *,
        driver_version: str = "550.54.15",
        init_error: type | None = None,
    ) -> None:
        # pynvml's constants and exception classes, so code written against it just works.
        for name in dir(pynvml):
            if name.startswith(("NVML_", "NVMLError")):
                setattr(self, name, getattr(pynvml, name))
        self.gpus = list(gpus or [])
        self.driver_version = driver_version
        self.init_error = init_error
        # pynvml function name -> the error class it raises whatever the GPU.
        self.errors: dict[str, type] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._initialised = False

    def _count(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def _checked(self, name: str) -> None:
        self._count(name)
        if not self._initialised:
            raise pynvml.NVMLError_Uninitialized()
        if name in self.errors:
            raise self.errors[name]()

    def _device(self, name: str, handle: SimpleNamespace) -> SimulatedGpu | SimulatedMig:
        self._checked(name)
        error = getattr(handle.device, "errors", {}).get(name)
        if error is not None:
            raise error()
        return handle.device

    def _gpu(self, name: str, handle: SimpleNamespace) -> SimulatedGpu:
        """The whole GPU behind `handle`, for the queries only a full GPU answers; a MIG
        device's handle is refused with NotSupported, as its utilization is."""
        device = self._device(name, handle)
        if isinstance(device, SimulatedMig):
            raise pynvml.NVMLError_NotSupported()
        return device

    # Library

    def nvmlInit(self) -> None:
        self._count("nvmlInit")
        if self.init_error is not None:
            raise self.init_error()
        self._initialised = True

    def nvmlShutdown(self) -> None:
        self._checked("nvmlShutdown")
        self._initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._checked("nvmlSystemGetDriverVersion")
        return self.driver_version

    # Devices

    def nvmlDeviceGetCount(self) -> int:
        self._checked("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimpleNamespace:
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError_InvalidArgument()
        handle = SimpleNamespace(device=self.gpus[index])
        self._device("nvmlDeviceGetHandleByIndex", handle)
        return handle

    def nvmlDeviceGetMinorNumber(self, handle: SimpleNamespace) -> int:
        gpu = self._gpu("nvmlDeviceGetMinorNumber", handle)
        return self.gpus.index(gpu) if gpu.minor_number is None else gpu.minor_number

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> SimpleNamespace:
        self._checked("nvmlDeviceGetHandleByUUID")
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return SimpleNamespace(device=gpu)
            for mig in gpu.mig or []:
                if mig.uuid == uuid:
                    return SimpleNamespace(device=mig)
        raise pynvml.NVMLError_NotFound()

    def nvmlDeviceGetUUID(self, handle: SimpleNamespace) -> str:
        return self._device("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetName(self, handle: SimpleNamespace) -> str:
        return self._device("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetMemoryInfo(self, handle: SimpleNamespace) -> SimpleNamespace:
        device = self._device("nvmlDeviceGetMemoryInfo", handle)
        used = getattr(device, "memory_used", 0)
        return SimpleNamespace(
            total=device.memory_total, used=used, free=device.memory_total - used
        )

    def nvmlDeviceGetUtilizationRates(self, handle: SimpleNamespace) -> SimpleNamespace:
        device = self._device("nvmlDeviceGetUtilizationRates", handle)
        if isinstance(device, SimulatedMig):  # as on a real MIG device
            raise pynvml.NVMLError_NotSupported()
        return SimpleNamespace(gpu=device.utilization, memory=0)

    # Health

    def nvmlDeviceGetTotalEccErrors(
        self, handle: SimpleNamespace, error_type: int, counter_type: int
    ) -> int:
        device = self._gpu("nvmlDeviceGetTotalEccErrors", handle)
        wanted = (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC)
        return device.volatile_uncorrected_ecc if (error_type, counter_type) == wanted else 0

    def nvmlDeviceGetRetiredPages(self, handle: SimpleNamespace, cause: int) -> list[int]:
        device = self._gpu("nvmlDeviceGetRetiredPages", handle)
        return [0x1000 * (i + 1) for i in range(device.retired_pages.get(cause, 0))]

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle: SimpleNamespace) -> int:
        device = self._gpu("nvmlDeviceGetRetiredPagesPendingStatus", handle)
        return int(device.retirement_pending)

    def nvmlDeviceGetRemappedRows(self, handle: SimpleNamespace) -> tuple[int, int, int, int]:
        return self._gpu("nvmlDeviceGetRemappedRows", handle).remapped_rows

    # MIG

    def nvmlDeviceGetMigMode(self, handle: SimpleNamespace) -> list[int]:
        device = self._gpu("nvmlDeviceGetMigMode", handle)
        mode = (
            pynvml.NVML_DEVICE_MIG_DISABLE if device.mig is None else pynvml.NVML_DEVICE_MIG_ENABLE
        )
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: SimpleNamespace) -> int:
        return self._gpu("nvmlDeviceGetMaxMigDeviceCount", handle).max_mig_devices

    def nvmlDeviceGetMigDeviceHandleByIndex(
        self, handle: SimpleNamespace, index: int
    ) -> SimpleNamespace:
        device = self._gpu("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        for mig in device.mig or []:
            if mig.slot == index:
                return SimpleNamespace(device=mig)
        raise pynvml.NVMLError_NotFound()


SIMULATED_DRIVER = "simulated (MLEB_SANDBOX_SIMULATED_GPUS)"
SIMULATED_NAME = "SIMULATED GPU"


def simulated_node(count: int) -> SimulatedNvml:
    """What a served process with MLEB_SANDBOX_SIMULATED_GPUS=count sees: healthy 80 GiB
    devices named SIMULATED GPU, with GPU-sim-<n>-… UUIDs and a driver version saying so, so
    no listing passes for hardware."""
    gpus = h100s(count)
    for index, gpu in enumerate(gpus):
        gpu.uuid, gpu.name = simulated_uuid(index), SIMULATED_NAME
    return SimulatedNvml(gpus, driver_version=SIMULATED_DRIVER)
