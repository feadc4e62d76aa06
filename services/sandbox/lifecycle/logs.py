"""Sandbox logs: numbered, batched into the database, and read back page by page.

Writers never wait for readers: the capture loop only ever waits for its own database
flush, and every reader pages from the database on its own, so a slow client holds at most
one page in memory and cannot slow the agent down.

One agent cannot grow the database without bound: its output (stdout and stderr) is charged
against the sandbox's log budget, each line at its stored UTF-8 length plus LINE_OVERHEAD_BYTES
(so a flood of empty lines costs too), and each line is first cut to MAX_LINE_CHARS. The first
line over the budget is replaced by one SYSTEM marker; that line and every later agent line
are dropped and counted (usage.log_lines_dropped). mleb's own SYSTEM lines are never charged
and never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from services.sandbox.db import store
from services.sandbox.lifecycle.states import SandboxState
from services.sandbox.lifecycle.threads import WorkerThreads
from services.sandbox.records import LogEntry, LogStream

# One huge line must not become one huge row or message.
MAX_LINE_CHARS = 16 * 1024
# What a stored line costs beyond its text: its row, key and index entries.
LINE_OVERHEAD_BYTES = 64
READ_PAGE_ENTRIES = 500
# A page's text: at most 1 MiB of UTF-8 (4 bytes a character at worst), so a follower holds
# little and each StreamLogs message stays far below the 16 MiB message cap, however long
# the lines are (500 lines of MAX_LINE_CHARS would be 32 MiB).
READ_PAGE_CHARS = 256 * 1024
# A writer's batch is full at this much text too, however few its lines: 500 of the longest
# lines would otherwise wait in memory as 8 Mi characters per sandbox.
BATCH_CHARS = 1 << 20
# Followers also poll, so lines written by another process still arrive.
FOLLOW_POLL_S = 1.0
REDACTED = "[REDACTED]"


class LogSignals:
    """Wakes this process's followers when new entries (or a terminal state) are committed."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, sandbox_id: str) -> None:
        event = self._events.pop(sandbox_id, None)
        if event is not None:
            event.set()

    async def wait(self, sandbox_id: str, timeout: float) -> None:
        event = self._events.setdefault(sandbox_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


class Redactor:
    """Replaces secret values in text. Only values long enough to be secrets are replaced."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)
            # Longest first, so a secret containing another is replaced whole.
            self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def clip(text: str) -> str:
    if len(text) <= MAX_LINE_CHARS:
        return text
    return text[:MAX_LINE_CHARS] + f" [... {len(text) - MAX_LINE_CHARS} characters cut]"


@dataclass(frozen=True)
class LogBudget:
    """The agent's log budget (docs/limits.md), and what a sandbox had used of it before a
    restart; lifecycle lines never count against it."""

    limit_bytes: int = 0
    charged_bytes: int = 0
    dropped_lines: int = 0


class LogWriter:
    """Numbers one sandbox's lines and stores them in batches.

    `add` never blocks; `flush` runs on a timer and whenever a batch is full. Sequence numbers
    continue from the stored last_log_seq, so they stay gapless across restarts.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        signals: LogSignals,
        threads: WorkerThreads,
        sandbox_id: str,
        *,
        last_seq: int,
        redact: Redactor,
        batch_lines: int = 500,
        flush_interval_s: float = 0.2,
        budget: LogBudget | None = None,
    ) -> None:
        self._sessions = sessions
        self._signals = signals
        self._threads = threads
        self.sandbox_id = sandbox_id
        self._next_seq = last_seq + 1
        self.redact = redact
        self._batch_lines = batch_lines
        self._flush_interval_s = flush_interval_s
        self._pending: list[LogEntry] = []
        self._pending_chars = 0
        self._pending_output_time: float | None = None
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        # The log budget (0: unbounded), what agent lines have cost so far, and how many were
        # dropped; they continue from the stored row across restarts.
        budget = budget or LogBudget()
        self._budget = budget.limit_bytes
        self.charged_bytes = budget.charged_bytes
        self.dropped_lines = budget.dropped_lines
        self._budget_dirty = False

    @property
    def full(self) -> bool:
        return len(self._pending) >= self._batch_lines or self._pending_chars >= BATCH_CHARS

    def add(self, stream: LogStream, text: str, at: float | None = None) -> None:
        moment = time.time() if at is None else at
        text = self.redact(text)
        if stream is not LogStream.SYSTEM:  # lifecycle lines are never cut or dropped
            text = clip(text)
            # Dropped lines move the output time too, so a restarted capture skips them.
            self._pending_output_time = moment
            if self._budget:
                self._budget_dirty = True
                cost = len(text.encode("utf-8", errors="replace")) + LINE_OVERHEAD_BYTES
                if self.dropped_lines or self.charged_bytes + cost > self._budget:
                    if not self.dropped_lines:
                        self._append(LogStream.SYSTEM, self.truncation_marker(), moment)
                    self.dropped_lines += 1
                    self._arm_timer()
                    return
                self.charged_bytes += cost
        self._append(stream, text, moment)
        self._arm_timer()

    def truncation_marker(self) -> str:
        return (
            f"agent output truncated: the log budget of {self._budget} bytes is spent; "
            f"later stdout and stderr lines are dropped and counted in usage.log_lines_dropped"
        )

    def _append(self, stream: LogStream, text: str, moment: float) -> None:
        self._pending.append(LogEntry(self._next_seq, moment, stream, text))
        self._pending_chars += len(text)
        self._next_seq += 1

    def _arm_timer(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_later())

    async def system(self, text: str) -> None:
        """A lifecycle line is part of the record: it is stored before the caller goes on,
        so a kill right after cannot lose it. (Agent lines survive a kill differently: the
        backend still holds them, and a restarted capture reads them again.)"""
        self.add(LogStream.SYSTEM, text)
        await self.flush()

    async def _flush_later(self) -> None:
        while self._pending or self._budget_dirty:
            await asyncio.sleep(self._flush_interval_s)
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending, self._pending_chars = self._pending, [], 0
            output_time, self._pending_output_time = self._pending_output_time, None
            budget_used = None
            if self._budget_dirty:
                budget_used = (self.charged_bytes, self.dropped_lines)
                self._budget_dirty = False
            if not batch and output_time is None and budget_used is None:
                return
            await self._threads.run(self._store, batch, output_time, budget_used)
        if batch:
            self._signals.notify(self.sandbox_id)

    def _store(
        self,
        batch: list[LogEntry],
        output_time: float | None,
        budget_used: tuple[int, int] | None,
    ) -> None:
        with self._sessions.begin() as session:
            store.append_logs(session, self.sandbox_id, batch, output_time, budget_used)

    async def close(self) -> None:
        """Flushes what is pending and stops the timer."""
        await self.flush()
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()


@dataclass(frozen=True)
class _Page:
    entries: list[LogEntry]
    terminal: bool


class LogReader:
    def __init__(
        self, sessions: sessionmaker[Session], signals: LogSignals, threads: WorkerThreads
    ) -> None:
        self._sessions = sessions
        self._signals = signals
        self._threads = threads

    def _page(self, sandbox_id: str, after_seq: int) -> _Page:
        with self._sessions() as session:
            # State first: a terminal state is committed only after every entry, so entries
            # read after seeing it are complete.
            state = SandboxState(store.get_row(session, sandbox_id).state)
            entries = store.read_logs(
                session, sandbox_id, after_seq, READ_PAGE_ENTRIES, READ_PAGE_CHARS
            )
        return _Page(entries, state.terminal)

    async def stream(
        self, sandbox_id: str, after_seq: int, follow: bool
    ) -> AsyncIterator[list[LogEntry]]:
        """Pages of consecutive entries after `after_seq`; with follow, until the end."""
        while True:
            page = await self._threads.run(self._page, sandbox_id, after_seq)
            if page.entries:
                after_seq = page.entries[-1].seq
                yield page.entries
                continue
            if not follow or page.terminal:
                return
            await self._signals.wait(sandbox_id, FOLLOW_POLL_S)
