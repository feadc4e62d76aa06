"""The node's GPUs through NVML (nvidia-ml-py's `pynvml`): inventory, health and usage samples.

NVML is initialised once per process and never shut down (process exit frees it), so many
inventories and threads share one initialisation. A node without a driver is not an error:
the snapshot says `nvml_available=False` and lists nothing. A field the GPU does not report
(NotSupported) is left at 0 and does not affect health. How health is decided: docs/gpus.md.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import pynvml
import structlog

from services.sandbox.gpus.simulated_nvml import is_simulated

log = structlog.get_logger("mleb.sandbox.gpus")

Health = Literal["healthy", "degraded", "unhealthy"]
_RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}

# Errors that mean "this GPU does not report that", not "something is wrong".
_NOT_REPORTED = ("NVMLError_NotSupported", "NVMLError_FunctionNotFound", "NVMLError_NotFound")
# Errors that mean the GPU itself is gone or wedged until a reset.
_LOST = ("NVMLError_GpuIsLost", "NVMLError_ResetRequired")


class MigDeviceInfo(NamedTuple):
    uuid: str
    name: str
    memory_total_bytes: int


@dataclass(frozen=True)
class GpuInfo:
    index: int
    uuid: str
    name: str
    memory_total_bytes: int
    memory_used_bytes: int
    utilization_percent: int
    health: Health
    # Why the health is not "healthy"; empty when it is.
    health_notes: list[str]
    # Volatile (since the driver loaded) uncorrected ECC errors; 0 when not reported.
    uncorrected_ecc_errors: int
    # Pages retired for ECC errors (pre-Ampere; Ampere and later remap rows instead).
    retired_pages: int
    mig_enabled: bool
    mig_devices: list[MigDeviceInfo] = field(default_factory=list)
    # A simulated device (MLEB_SANDBOX_SIMULATED_GPUS), not hardware.
    simulated: bool = False


@dataclass(frozen=True)
class InventorySnapshot:
    node: str
    nvml_available: bool
    driver_version: str
    gpus: list[GpuInfo]


class _Unreported(Exception):
    """The field is not reported by this GPU."""


# One initialisation per NVML module object (the real pynvml, or a test's fake).
_init_lock = threading.Lock()
_initialised: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _unopened(index: int, note: str) -> GpuInfo:
    return GpuInfo(
        index=index,
        uuid="",
        name="",
        memory_total_bytes=0,
        memory_used_bytes=0,
        utilization_percent=0,
        health="unhealthy",
        health_notes=[note],
        uncorrected_ecc_errors=0,
        retired_pages=0,
        mig_enabled=False,
    )


def _text(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes.
    return value.decode() if isinstance(value, bytes) else value


class _Assessment:
    """Collects health findings for one GPU; the worst one wins."""

    def __init__(self) -> None:
        self.health: Health = "healthy"
        self.notes: list[str] = []

    def flag(self, health: Health, note: str) -> None:
        if _RANK[health] > _RANK[self.health]:
            self.health = health
        self.notes.append(note)


class GpuInventory:
    """Reads the GPUs of this node. Thread-safe; NVML's own calls are thread-safe."""

    def __init__(self, node: str, nvml: Any = None) -> None:
        self.node = node
        self._nvml = nvml if nvml is not None else pynvml
        self._handles: dict[str, Any] = {}
        self._absence_logged = False

    def _ready(self) -> bool:
        """Initialises NVML once per process; False when there is no usable driver."""
        nvml = self._nvml
        if _initialised.get(nvml):
            return True
        with _init_lock:
            if _initialised.get(nvml):
                return True
            try:
                nvml.nvmlInit()
            except nvml.NVMLError as exc:
                # Not cached: a driver loaded later is picked up by the next call.
                if not self._absence_logged:
                    log.info("nvml_unavailable", node=self.node, error=str(exc))
                    self._absence_logged = True
                return False
            _initialised[nvml] = True
            return True

    def _field(self, fn, *args: Any) -> Any:
        nvml = self._nvml
        try:
            return fn(*args)
        except nvml.NVMLError as exc:
            if isinstance(exc, tuple(getattr(nvml, name) for name in _NOT_REPORTED)):
                raise _Unreported from exc
            raise

    def _is_lost(self, exc: Exception) -> bool:
        return isinstance(exc, tuple(getattr(self._nvml, name) for name in _LOST))

    def snapshot(self) -> InventorySnapshot:
        if not self._ready():
            return InventorySnapshot(self.node, False, "", [])
        nvml = self._nvml
        try:
            driver = _text(nvml.nvmlSystemGetDriverVersion())
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as exc:  # e.g. the driver was unloaded under us
            log.warning("nvml_failed", node=self.node, error=str(exc))
            return InventorySnapshot(self.node, False, "", [])
        return InventorySnapshot(self.node, True, driver, [self._gpu(i) for i in range(count)])

    def _gpu(self, index: int) -> GpuInfo:
        nvml = self._nvml
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            name = _text(nvml.nvmlDeviceGetName(handle))
        except nvml.NVMLError as exc:
            # Listed so that operators see it; without a UUID it can never be leased.
            return _unopened(index, f"cannot be opened: {exc}")
        self._handles[uuid] = handle
        assessment = _Assessment()
        readers = {
            "memory": lambda: self._field(nvml.nvmlDeviceGetMemoryInfo, handle),
            "utilization": lambda: self._field(nvml.nvmlDeviceGetUtilizationRates, handle).gpu,
            "ECC errors": lambda: self._uncorrected_ecc(handle, assessment),
            "retired pages": lambda: self._retired_pages(handle, assessment),
            "row remapping": lambda: self._row_remapping(handle, assessment),
            "MIG mode": lambda: self._mig(handle),
        }
        values: dict[str, Any] = {}
        for key, read in readers.items():
            try:
                values[key] = read()
            except _Unreported:
                continue
            except nvml.NVMLError as exc:
                if self._is_lost(exc):
                    assessment.flag("unhealthy", f"{exc}: reset or replace the GPU")
                    break
                # Something the GPU should tell us but does not: not fit to hand out as fine.
                assessment.flag("degraded", f"could not read {key}: {exc}")
        memory = values.get("memory")
        mig_devices = values.get("MIG mode")
        return GpuInfo(
            index=index,
            uuid=uuid,
            name=name,
            memory_total_bytes=int(memory.total) if memory else 0,
            memory_used_bytes=int(memory.used) if memory else 0,
            utilization_percent=int(values.get("utilization", 0)),
            health=assessment.health,
            health_notes=assessment.notes,
            uncorrected_ecc_errors=int(values.get("ECC errors", 0)),
            retired_pages=int(values.get("retired pages", 0)),
            mig_enabled=mig_devices is not None,
            mig_devices=mig_devices or [],
            simulated=is_simulated(uuid),
        )

    def _uncorrected_ecc(self, handle: Any, assessment: _Assessment) -> int:
        nvml = self._nvml
        count = self._field(
            nvml.nvmlDeviceGetTotalEccErrors,
            handle,
            nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            nvml.NVML_VOLATILE_ECC,
        )
        if count:
            # Data in GPU memory was corrupted since the driver loaded; results are suspect.
            assessment.flag("unhealthy", f"{count} uncorrected ECC error(s) since driver load")
        return count

    def _retired_pages(self, handle: Any, assessment: _Assessment) -> int:
        nvml = self._nvml
        retired = sum(
            len(self._field(nvml.nvmlDeviceGetRetiredPages, handle, cause))
            for cause in (
                nvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
                nvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
            )
        )
        try:
            pending = self._field(nvml.nvmlDeviceGetRetiredPagesPendingStatus, handle)
        except _Unreported:
            pending = 0
        if pending:
            assessment.flag("degraded", "page retirement pending: reset the GPU to apply it")
        return retired

    def _row_remapping(self, handle: Any, assessment: _Assessment) -> None:
        _corrected, _uncorrected, pending, failure = self._field(
            self._nvml.nvmlDeviceGetRemappedRows, handle
        )
        if failure:
            assessment.flag("unhealthy", "row remapping failed: the GPU needs service")
        elif pending:
            assessment.flag("degraded", "row remapping pending: reset the GPU to apply it")

    def _mig(self, handle: Any) -> list[MigDeviceInfo] | None:
        """The MIG devices, or None when MIG is off or not supported."""
        nvml = self._nvml
        current, _pending = self._field(nvml.nvmlDeviceGetMigMode, handle)
        if current != nvml.NVML_DEVICE_MIG_ENABLE:
            return None
        devices = []
        for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nvml.NVMLError_NotFound:  # an empty slot
                continue
            devices.append(
                MigDeviceInfo(
                    _text(nvml.nvmlDeviceGetUUID(mig)),
                    _text(nvml.nvmlDeviceGetName(mig)),
                    int(nvml.nvmlDeviceGetMemoryInfo(mig).total),
                )
            )
        return devices

    def sample(self, uuids: list[str]) -> dict[str, tuple[int, int]]:
        """uuid -> (utilization percent, memory used bytes). Two NVML calls per GPU; GPUs
        that cannot be read are left out."""
        if not uuids or not self._ready():
            return {}
        nvml = self._nvml
        samples: dict[str, tuple[int, int]] = {}
        for uuid in uuids:
            try:
                handle = self._handles.get(uuid)
                if handle is None:
                    handle = self._handles[uuid] = nvml.nvmlDeviceGetHandleByUUID(uuid)
                used = int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
                try:
                    utilization = int(self._field(nvml.nvmlDeviceGetUtilizationRates, handle).gpu)
                except _Unreported:  # e.g. MIG devices
                    utilization = 0
            except nvml.NVMLError as exc:
                log.warning("gpu_sample_failed", gpu_uuid=uuid, error=str(exc))
                continue
            samples[uuid] = (utilization, used)
        return samples
