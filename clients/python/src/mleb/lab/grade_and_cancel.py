"""How a run group ends: graded through GraderService once its runs are done, or cancelled
by `mleb cancel` from another process while `mleb run` may still be going."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mleb.client import AsyncClient
from mleb.errors import MlebError
from mleb.lab.evidence_files import GRADING_STATEMENT_FILE, export_chain, write_envelope
from mleb.lab.group_folder import CANCEL_FILE, load_records, now, read_group, write_group_metadata
from mleb.lab.records import (
    METADATA_FILE,
    RunRecord,
    RunState,
    attempt_from_sandbox,
    grading_report_name,
    submission_path,
    write_json_atomic,
    write_run,
)
from mleb.lab.run_plan import RUN_GROUP_LABEL, PlanError
from mleb.lab.run_progress import ACTIVE_STATES, TRANSIENT
from mleb.report_proto import report_from_proto, report_without_score
from mleb.reports import NO_SUBMISSION, CompetitionReport, aggregate_reports
from mleb.sandbox.v1 import sandbox_service_pb2 as sandbox_pb

# Awaits a call, waiting out transient errors (the driver's Orchestrator._rpc).
Rpc = Callable[..., Awaitable[Any]]


async def grade_group(
    client: AsyncClient, group_dir: Path, runs: Iterable[RunRecord], rpc: Rpc
) -> Path:
    """Grades every run through GraderService into `<timestamp>_grading_report.json`, in
    (competition, seed) order, and records which runs succeeded in metadata.json."""
    records = sorted(runs, key=lambda r: (r.competition_id, r.seed))
    reports = [await _grade_run(client, group_dir, r, rpc) for r in records]
    path = group_dir / grading_report_name()
    write_json_atomic(path, aggregate_reports(reports))
    await rpc(export_chain, client, group_dir)
    metadata, launch = read_group(group_dir)
    runs_succeeded = {r.run_id: r.state is RunState.SUCCEEDED for r in records}
    write_group_metadata(group_dir, replace(metadata, runs=runs_succeeded), launch)
    return path


async def _grade_run(
    client: AsyncClient, group_dir: Path, record: RunRecord, rpc: Rpc
) -> CompetitionReport:
    shown = submission_path(record.run_id)
    file = group_dir / shown
    if file.is_file() and not file.is_symlink():
        try:
            reply = await rpc(
                client.grade_submission, record.competition_id, file, submission_path=shown
            )
            statement = group_dir / record.run_id / GRADING_STATEMENT_FILE
            write_envelope(statement, reply.statement)
            return report_from_proto(reply.report)
        except MlebError as exc:
            # Refused outright (too large, unreadable): graded as an invalid submission.
            if exc.code in TRANSIENT:
                raise
            return await _ungraded(client, record, shown, rpc, exists=True, error=str(exc))
    return await _ungraded(client, record, shown, rpc, exists=False, error=NO_SUBMISSION)


async def _ungraded(client: AsyncClient, record: RunRecord, shown: str, rpc: Rpc, *,
                    exists: bool, error: str) -> CompetitionReport:  # fmt: skip
    reply = await rpc(client.rank_score, record.competition_id, None)
    return report_without_score(
        record.competition_id,
        reply.ranking,
        submission_path=shown,
        submission_exists=exists,
        error=error,
    )


@dataclass(frozen=True)
class CancelResult:
    stopped: list[str]
    runs_cancelled: list[str]


async def cancel_group(client: AsyncClient, group_dir: Path) -> CancelResult:
    """Stops every sandbox of the group and marks its unfinished runs CANCELLED. The marker
    file goes first, so a `mleb run` still going starts nothing more."""
    if not (group_dir / METADATA_FILE).is_file():
        raise PlanError(f"{group_dir}: no {METADATA_FILE}; not a run group")
    (group_dir / CANCEL_FILE).write_text(now() + "\n", encoding="utf-8")
    name = group_dir.name
    active, token = [], ""
    while True:
        page = await client.list_sandboxes(
            sandbox_pb.ListSandboxesRequest(
                labels={RUN_GROUP_LABEL: name},
                states=ACTIVE_STATES,
                page_size=1000,
                page_token=token,
            )
        )
        active += [s.id for s in page.sandboxes]
        token = page.next_page_token
        if not token:
            break
    reason = f"run group {name} cancelled"
    await asyncio.gather(*(client.stop_sandbox(i, reason=reason) for i in active))
    cancelled = []
    for run_id, record in load_records(group_dir).items():
        if record.state.finished:
            continue
        attempts = list(record.attempts)
        if attempts:
            sandbox = (await client.get_sandbox(attempts[-1].sandbox_id)).sandbox
            attempts[-1] = attempt_from_sandbox(sandbox)
        write_run(
            group_dir / run_id,
            replace(record, attempts=tuple(attempts), state=RunState.CANCELLED, finished_at=now()),
        )
        cancelled.append(run_id)
    return CancelResult(active, cancelled)
