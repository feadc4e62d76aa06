"""Ending a sandbox: the terminal state is recorded first, then what it held is released."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from services.sandbox.backends.base import BackendError, Handle
from services.sandbox.db.schema import SandboxRow
from services.sandbox.lifecycle.driving import Driving
from services.sandbox.lifecycle.evidence import SandboxEvidence
from services.sandbox.lifecycle.interfaces import Endpoints
from services.sandbox.lifecycle.logs import LogSignals
from services.sandbox.lifecycle.states import FailureReason, SandboxState, backend_failure_reason
from services.sandbox.lifecycle.token_revocation import token_deadline
from services.sandbox.node import artifacts
from services.sandbox.records import SandboxRecord

log = structlog.get_logger("mleb.sandbox")


def requested_end(row: SandboxRow) -> tuple[SandboxState, FailureReason | None, str]:
    """The end a recorded stop intent asks for: its state, failure reason and message."""
    reason = row.stop_failure_reason
    return SandboxState(row.stop_target), FailureReason(reason) if reason else None, row.stop_reason


class Finisher:
    def __init__(
        self,
        driving: Driving,
        endpoints: Endpoints,
        signals: LogSignals,
        *,
        on_gpus_released: Callable[[], None],
        evidence: SandboxEvidence,
        on_finished: Callable[[str, datetime | None], None] | None = None,
    ) -> None:
        self._rows = driving.rows
        self._threads = driving.threads
        self._backend = driving.backend
        self._endpoints = endpoints
        self._signals = signals
        self._live = driving.live
        self._on_gpus_released = on_gpus_released
        self._settings = driving.settings
        self._egress_max_destinations = driving.settings.egress_max_destinations
        self.evidence = evidence
        # Revokes the sandbox's tokens (services.sandbox.lifecycle.token_revocation).
        self._on_finished = on_finished

    async def finish(
        self,
        sandbox_id: str,
        state: SandboxState,
        reason: FailureReason | None,
        message: str,
        *,
        handle: Handle | None,
        exit_code: int | None = None,
    ) -> None:
        """Records the end, then releases what the sandbox held, in that order."""
        row = await self._threads.run(self._rows.get, sandbox_id)
        root = Path(row.layout_root)
        collected, size = await self._threads.run(_collect, root)
        live = self._live.for_row(row, {})
        summary = f"finished: {state.value}"
        if exit_code is not None:
            summary += f" (exit code {exit_code})"
        if message:
            summary += f": {message}"
        summary += "; submission collected" if collected else "; no submission.csv"
        await live.writer.system(summary)
        await live.writer.close()
        stats = live.stats
        values: dict[str, object] = {
            "finished_at": datetime.now(UTC),
            "exit_code": exit_code,
            "failure_reason": reason.value if reason else "",
            "failure_class": reason.failure_class.value if reason else "",
            "failure_message": message,
            "submission_collected": collected,
            "artifacts_size_bytes": size,
            "cpu_seconds": stats.cpu_seconds,
            "peak_memory_bytes": stats.peak_memory_bytes,
            "gpu_utilization_percent": (
                stats.gpu_utilization_sum / stats.gpu_samples if stats.gpu_samples else 0.0
            ),
            "peak_gpu_memory_bytes": stats.peak_gpu_memory_bytes,
        }
        if stats.peak_disk_bytes:  # kept from before a restart otherwise
            values["peak_disk_bytes"] = max(stats.peak_disk_bytes, row.peak_disk_bytes or 0)
        # The agent has exited: closing its endpoints ends its proxied connections, and writes
        # their egress log, which is part of the record the terminal state seals.
        with contextlib.suppress(Exception):
            await self._endpoints.close(sandbox_id)
        if handle is not None and self._backend.capabilities.endpoints_on_node:
            await self._take_node_egress(sandbox_id, handle)
        final = await self._threads.run(self._rows.preview, sandbox_id, state, values)
        if final is not None:
            values["attestation"], values["attestation_error"] = await self._attest(
                final, row.audit_first_seq
            )
        recorded = await self._threads.run(self._rows.update, sandbox_id, state, values)
        if self._on_finished is not None:
            scheduled = self._backend.capabilities.scheduler_placed
            self._on_finished(sandbox_id, token_deadline(row, self._settings, scheduled))
        log.info(
            "sandbox_finished",
            sandbox_id=sandbox_id,
            state=state.value,
            recorded=recorded,
            reason=reason.value if reason else "",
        )
        await self.release(sandbox_id)
        # Waiters (StopSandbox, followed logs) wake once the GPUs are free again.
        self._signals.notify(sandbox_id)
        if handle is not None:
            try:
                await self._backend.remove(handle)
            except BackendError:
                log.warning("sandbox_remove_failed", sandbox_id=sandbox_id)
        with contextlib.suppress(Exception):
            await self._endpoints.close(sandbox_id)
        await self._live.drop(sandbox_id)

    async def _take_node_egress(self, sandbox_id: str, handle: Handle) -> None:
        """The egress log the agent's node served, into the record before it is sealed."""
        try:
            sums = await self._backend.node_egress(handle)
        except BackendError as exc:
            log.warning("node_egress_unreadable", sandbox_id=sandbox_id, error=str(exc))
            return
        if sums is not None:
            await self._threads.run(
                self._rows.add_egress, sandbox_id, sums, self._egress_max_destinations
            )

    async def _attest(self, final: SandboxRecord, first_seq: int) -> tuple[str, str]:
        """The attestation, or why there is none: a fault here must never keep a sandbox
        from its terminal state, or its GPUs from going back."""
        try:
            return await self.evidence.attest(final, first_seq)
        except Exception:
            log.exception("attestation_crashed", sandbox_id=final.id)
            return "", "not attested: an internal error in the sandbox service (see its log)"

    async def backend_failed(
        self, sandbox_id: str, exc: BackendError, handle: Handle | None = None
    ) -> None:
        """Ends as FAILED a sandbox its backend failed: an infrastructure failure."""
        reason = backend_failure_reason(exc.reason)
        await self.finish(sandbox_id, SandboxState.FAILED, reason, str(exc), handle=handle)

    async def fail(self, sandbox_id: str, reason: FailureReason, message: str) -> None:
        """Ends as FAILED a sandbox that has no container (never launched, or gone)."""
        await self.finish(sandbox_id, SandboxState.FAILED, reason, message, handle=None)

    async def release(self, sandbox_id: str) -> None:
        """Gives the sandbox's GPU leases back; call only once its end is recorded."""
        if await self._threads.run(self._rows.release_leases, sandbox_id):
            self._on_gpus_released()


def _collect(root: Path) -> tuple[bool, int]:
    if not root.is_dir():
        return False, 0
    return artifacts.has_submission(root), artifacts.outputs_size(root)
