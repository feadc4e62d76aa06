"""`mleb run`'s driver: one sandbox per (competition, seed), run K at a time, graded at the end.

Plain Python over the async client; the CLI (mleb/lab/run_cmds.py) only parses options and
draws progress. Everything a run does is written to its run.json before the next step, so a
killed CLI loses nothing: the same group run again skips finished pairs and re-attaches to
sandboxes still going. Re-attaching needs no lookup: a sandbox is created with an idempotency
key made of (group, competition, seed, attempt number), so repeating a create whose answer was
never recorded returns the sandbox it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tarfile
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mleb.client import NO_DEADLINE, AsyncClient
from mleb.errors import MlebError, NotFound
from mleb.lab.artifact_extraction import UnsafeArchive, extract_artifacts
from mleb.lab.evidence_files import ATTESTATION_FILE, write_envelope
from mleb.lab.grade_and_cancel import grade_group
from mleb.lab.group_folder import CANCEL_FILE, now, prepare_group
from mleb.lab.records import (
    GRADING_REPORT_SUFFIX,
    RunRecord,
    RunState,
    attempt_from_sandbox,
    timestamp,
    write_run,
)
from mleb.lab.run_plan import RunPlan, create_request
from mleb.lab.run_progress import (
    ACTIVE_STATES,
    TRANSIENT,
    GroupResult,
    RunProgress,
    is_settled,
    retryable,
    trailing_failures,
)
from mleb.sandbox.v1 import sandbox_pb2

_ARTIFACTS_TIMEOUT_S = 3600.0


def _timestamp(sandbox: sandbox_pb2.Sandbox, name: str) -> datetime | None:
    if not sandbox.HasField(name):
        return None
    return getattr(sandbox, name).ToDatetime(tzinfo=UTC)


class Orchestrator:
    """Drives one run group to the end. `progress` is kept current for a display."""

    def __init__(
        self,
        client: AsyncClient,
        group_dir: Path,
        plan: RunPlan,
        *,
        mleb_version: str = "",
        poll_interval_s: float = 1.0,
        patience_s: float = 300.0,
        on_event: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.client = client
        self.group_dir = group_dir
        self.plan = plan
        self.mleb_version = mleb_version
        self.poll_interval_s = poll_interval_s
        # How long a service may stay unreachable before a run gives up on it.
        self.patience_s = patience_s
        self.on_event = on_event
        self.progress: dict[str, RunProgress] = {}
        self.records: dict[str, RunRecord] = {}

    @property
    def name(self) -> str:
        return self.group_dir.name

    def cancel_requested(self) -> bool:
        return (self.group_dir / CANCEL_FILE).exists()

    async def run(self) -> GroupResult:
        # A resume is a new request to finish the group, so an earlier cancel no longer holds.
        (self.group_dir / CANCEL_FILE).unlink(missing_ok=True)
        self.records = prepare_group(self.group_dir, self.plan, self.mleb_version)
        if (report := self._final_report()) is not None:
            return GroupResult(self.group_dir, report, dict(self.records), False, True)
        order = {pair: i for i, pair in enumerate(self.plan.pairs())}
        ordered = sorted(
            self.records.values(),
            # Runs with a sandbox on the go first: they hold (or held) a concurrency slot.
            key=lambda r: (r.state is RunState.PENDING, order[(r.competition_id, r.seed)]),
        )
        for record in ordered:
            self.progress[record.run_id] = RunProgress(
                record.run_id,
                record.competition_id,
                record.seed,
                record.state,
                attempt=len(record.attempts),
                note="done earlier" if is_settled(record) else "",
            )
        slots = asyncio.Semaphore(self.plan.concurrency)
        try:
            async with asyncio.TaskGroup() as tasks:
                for record in ordered:
                    if not is_settled(record):
                        tasks.create_task(self._drive(record, slots))
        except* MlebError as group:
            # One refusal (bad token, invalid request) ends the group; sandboxes already
            # started keep running and a resume re-attaches to them.
            raise group.exceptions[0] from None
        cancelled = self.cancel_requested()
        report = await self.grade()
        return GroupResult(self.group_dir, report, dict(self.records), cancelled)

    def _final_report(self) -> Path | None:
        """The newest grading report when it was written after every run had settled: a
        resume of a finished group grades nothing again and writes no second report."""
        reports = sorted(self.group_dir.glob(f"*{GRADING_REPORT_SUFFIX}"))
        if not reports or not all(is_settled(r) for r in self.records.values()):
            return None
        graded_at = reports[-1].name.removesuffix(GRADING_REPORT_SUFFIX)
        ends = [
            timestamp(datetime.fromisoformat(r.finished_at))
            for r in self.records.values()
            if r.finished_at
        ]
        # Both are MLE-bench's fixed-width UTC timestamps, so text order is time order.
        return reports[-1] if all(end <= graded_at for end in ends) else None

    # One run.

    def _save(self, record: RunRecord) -> RunRecord:
        write_run(self.group_dir / record.run_id, record)
        self.records[record.run_id] = record
        self.progress[record.run_id].state = record.state
        return record

    async def _drive(self, record: RunRecord, slots: asyncio.Semaphore) -> None:
        progress = self.progress[record.run_id]
        progress.note = "queued"
        async with slots:
            progress.note = ""
            # A run resumed after it ended (infrastructure failure, cancelled) starts afresh;
            # an unfinished one keeps the retries it already spent.
            fresh = record.state.finished
            spent = 0 if fresh else trailing_failures(record.attempts)
            last = record.attempts[-1] if record.attempts and not fresh else None
            sandbox = None
            if fresh:
                record = self._save(replace(record, state=RunState.PENDING, finished_at=""))
            elif last is not None and not (retryable(last) and spent <= self.plan.max_retries):
                # Re-attach to it, or settle it if it ended while nobody watched.
                sandbox = await self._get(last.sandbox_id)
            while True:
                if sandbox is None:
                    if self.cancel_requested():
                        self._save(replace(record, state=RunState.CANCELLED, finished_at=now()))
                        return
                    sandbox = await self._create(record)
                record = self._record_attempt(record, sandbox)
                if self.cancel_requested():
                    await self._stop(sandbox.id)
                sandbox = await self._follow(record, sandbox)
                record = self._record_attempt(record, sandbox)
                attempt = record.attempts[-1]
                if retryable(attempt):
                    spent += 1
                    if spent <= self.plan.max_retries:
                        self.on_event(
                            f"{record.run_id}: infrastructure failure ({attempt.failure_reason}: "
                            f"{attempt.failure_message}); retry {spent} of {self.plan.max_retries}"
                        )
                        sandbox = None
                        continue
                await self._finish(record, sandbox)
                return

    async def _create(self, record: RunRecord) -> sandbox_pb2.Sandbox:
        request = create_request(self.plan, self.name, record, len(record.attempts))
        reply = await self._rpc(self.client.create_sandbox, request)
        return reply.sandbox

    async def _get(self, sandbox_id: str) -> sandbox_pb2.Sandbox:
        try:
            return (await self._rpc(self.client.get_sandbox, sandbox_id)).sandbox
        except NotFound:
            # The service lost its record (a new database): an infrastructure failure.
            return sandbox_pb2.Sandbox(
                id=sandbox_id,
                state=sandbox_pb2.SANDBOX_STATE_FAILED,
                failure_class=sandbox_pb2.FAILURE_CLASS_INFRASTRUCTURE,
                failure_reason=sandbox_pb2.FAILURE_REASON_LOST,
                failure_message="the sandbox service has no record of this sandbox",
            )

    def _record_attempt(self, record: RunRecord, sandbox: sandbox_pb2.Sandbox) -> RunRecord:
        """run.json gets each change of the sandbox's state as soon as it is seen (usage
        figures that change on every poll are written with the next state change)."""
        attempt = attempt_from_sandbox(sandbox)
        attempts = list(record.attempts)
        if attempts and attempts[-1].sandbox_id == sandbox.id:
            attempts[-1] = attempt
        else:
            attempts.append(attempt)
        state = RunState.RUNNING if attempt.state is RunState.RUNNING else RunState.PENDING
        progress = self.progress[record.run_id]
        progress.attempt, progress.sandbox_id = len(attempts), sandbox.id
        progress.started_at = _timestamp(sandbox, "started_at")
        progress.finished_at = _timestamp(sandbox, "finished_at")
        updated = replace(
            record,
            attempts=tuple(attempts),
            state=state if not attempt.state.finished else record.state,
            image_digest=sandbox.image_digest or record.image_digest,
        )
        seen = record.attempts[-1] if len(record.attempts) == len(attempts) else None
        if seen is None or seen.state != attempt.state or updated.state != record.state:
            self._save(updated)
        else:
            self.records[record.run_id] = updated
        return updated

    async def _follow(self, record: RunRecord, sandbox: sandbox_pb2.Sandbox) -> sandbox_pb2.Sandbox:
        """Polls until the sandbox ends, recording each state change; tails its log meanwhile."""
        tail = asyncio.create_task(self._tail(record.run_id, sandbox.id))
        try:
            while sandbox.state in ACTIVE_STATES:
                await asyncio.sleep(self.poll_interval_s)
                if self.cancel_requested():
                    await self._stop(sandbox.id)
                sandbox = await self._get(sandbox.id)
                record = self._record_attempt(record, sandbox)
        finally:
            tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tail
        return sandbox

    async def _tail(self, run_id: str, sandbox_id: str) -> None:
        """The latest log line, for the display only: errors just pause it."""
        progress, after = self.progress[run_id], 0
        while True:
            try:
                async for batch in self.client.stream_logs(
                    sandbox_id, after_seq=after, follow=True, timeout=NO_DEADLINE
                ):
                    for entry in batch.entries:
                        after = entry.seq
                        if entry.text.strip():
                            progress.latest_line = entry.text.strip()
                return
            except MlebError:
                await asyncio.sleep(self.poll_interval_s)

    async def _stop(self, sandbox_id: str) -> None:
        with contextlib.suppress(MlebError):
            await self.client.stop_sandbox(sandbox_id, reason=f"run group {self.name} cancelled")

    async def _finish(self, record: RunRecord, sandbox: sandbox_pb2.Sandbox) -> None:
        """Downloads the outputs, then records the final outcome (in that order, so a run
        marked finished always has its artifacts)."""
        attempt = record.attempts[-1]
        message = attempt.failure_message
        write_envelope(self.group_dir / record.run_id / ATTESTATION_FILE, sandbox.attestation)
        if sandbox.attestation_error:
            self.on_event(f"{record.run_id}: {sandbox.attestation_error}")
        try:
            await self._download(record.run_id, sandbox.id)
        except (MlebError, UnsafeArchive, tarfile.TarError, OSError) as exc:
            # Whatever the agent's outputs do to this disk ends this run, never the group.
            self.on_event(f"{record.run_id}: artifacts not downloaded: {exc}")
            message = "; ".join(filter(None, [message, f"artifacts not downloaded: {exc}"]))
        self._save(
            replace(
                record,
                state=attempt.state,
                failure_type=attempt.failure_type,
                failure_reason=attempt.failure_reason,
                failure_message=message,
                finished_at=now(),
            )
        )
        self.on_event(f"{record.run_id}: {attempt.state.value}")

    async def _download(self, run_id: str, sandbox_id: str) -> None:
        run_dir = self.group_dir / run_id
        partial = run_dir / ".artifacts.tar.partial"

        async def fetch() -> None:
            digest, size, expected = hashlib.sha256(), 0, None
            with partial.open("wb") as handle:
                async for chunk in self.client.download_artifacts(
                    sandbox_id, timeout=_ARTIFACTS_TIMEOUT_S
                ):
                    if expected is None:
                        expected = (chunk.total_size_bytes, chunk.sha256)
                    handle.write(chunk.data)
                    digest.update(chunk.data)
                    size += len(chunk.data)
            if expected != (size, digest.hexdigest()):
                raise UnsafeArchive("the download did not match its size and sha256")

        try:
            await self._rpc(fetch)
            await asyncio.to_thread(extract_artifacts, partial, run_dir)
        finally:
            partial.unlink(missing_ok=True)

    async def _rpc(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Awaits `call(*args, **kwargs)`, waiting out transient errors for `patience_s`."""
        loop = asyncio.get_running_loop()
        give_up, delay = loop.time() + self.patience_s, 0.5
        while True:
            try:
                return await call(*args, **kwargs)
            except MlebError as exc:
                if exc.code not in TRANSIENT or loop.time() + delay > give_up:
                    raise
                self.on_event(f"{exc}; trying again in {delay:g}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    # Grading.

    async def grade(self) -> Path | None:
        """Grades every run (grade_and_cancel.grade_group) with this driver's patience."""
        return await grade_group(self.client, self.group_dir, self.records.values(), self._rpc)
