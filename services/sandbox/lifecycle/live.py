"""What this process holds in memory for the sandboxes it drives: log writer, stop signal,
usage figures. The database holds everything else, so a restart loses none of it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from services.sandbox.config import SandboxSettings
from services.sandbox.db.schema import SandboxRow
from services.sandbox.lifecycle.logs import LogBudget, LogSignals, LogWriter, Redactor
from services.sandbox.lifecycle.threads import WorkerThreads


@dataclass
class Stats:
    cpu_seconds: float = 0.0
    peak_memory_bytes: int = 0
    gpu_utilization_sum: float = 0.0
    gpu_samples: int = 0
    peak_gpu_memory_bytes: int = 0
    peak_disk_bytes: int = 0


@dataclass
class Live:
    """What this process holds in memory for a sandbox it drives."""

    writer: LogWriter
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stats: Stats = field(default_factory=Stats)


class LiveSandboxes:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        signals: LogSignals,
        threads: WorkerThreads,
        settings: SandboxSettings,
    ) -> None:
        self._sessions = sessions
        self._signals = signals
        self._threads = threads
        self._settings = settings
        self._live: dict[str, Live] = {}

    def get(self, sandbox_id: str) -> Live | None:
        return self._live.get(sandbox_id)

    def __getitem__(self, sandbox_id: str) -> Live:
        return self._live[sandbox_id]

    def for_row(self, row: SandboxRow, secret_values: dict[str, str]) -> Live:
        """The sandbox's live state, made on first use; its writer redacts `secret_values`."""
        live = self._live.get(row.id)
        if live is None:
            writer = LogWriter(
                self._sessions,
                self._signals,
                self._threads,
                row.id,
                last_seq=row.last_log_seq,
                redact=Redactor(secret_values.values()),
                batch_lines=self._settings.log_batch_lines,
                flush_interval_s=self._settings.log_flush_interval_s,
                budget=LogBudget(
                    row.log_bytes or self._settings.default_log_bytes,
                    row.agent_log_bytes or 0,
                    row.log_lines_dropped or 0,
                ),
            )
            live = self._live[row.id] = Live(writer)
        return live

    async def drop(self, sandbox_id: str) -> None:
        live = self._live.pop(sandbox_id, None)
        if live is not None:
            await live.writer.close()

    async def close_all(self) -> None:
        for live in list(self._live.values()):
            with contextlib.suppress(Exception):
                await live.writer.close()
        self._live.clear()
