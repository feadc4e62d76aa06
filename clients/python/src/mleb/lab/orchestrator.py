"""`mleb run`'s core: one sandbox per (competition, seed), run K at a time, graded at the end.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2

from mleb.client import NO_DEADLINE, AsyncClient
from mleb.errors import MlebError, NotFound
from mleb.lab.artifact_extraction import UnsafeArchive, extract_artifacts
from mleb.lab.evidence_files import (
    ATTESTATION_FILE,
    GRADING_STATEMENT_FILE,
    export_chain,
    write_envelope,
)
from mleb.lab.records import (
    GRADING_REPORT_SUFFIX,
    METADATA_FILE,
    RUN_FILE,
    Attempt,
    Budget,
    FailureType,
    GroupMetadata,
    RunRecord,
    RunState,
    attempt_from_sandbox,
    create_run_dir,
    grading_report_name,
    new_run_id,
    read_json,
    read_run,
    submission_path,
    timestamp,
    write_json_atomic,
    write_run,
)
from mleb.registry.v1 import registry_pb2
from mleb.report_proto import report_from_proto, report_without_score
from mleb.reports import NO_SUBMISSION, CompetitionReport, aggregate_reports
from mleb.sandbox.v1 import sandbox_pb2
from mleb.sandbox.v1 import sandbox_service_pb2 as sandbox_pb
from mleb.splits import canonical_split

DEFAULT_MAX_RETRIES = 2
RUN_GROUP_LABEL = "mleb.run_group"
RUN_ID_LABEL = "mleb.run_id"
SEED_LABEL = "mleb.seed"
SEED_ENV = "MLEB_SEED"
# The MLE-bench splits, and the demo's own competitions.
SPLITS = ("low", "medium", "high", "all", "builtin")
# Written by `mleb cancel`: a running `mleb run` starts nothing more and stops what it started.
CANCEL_FILE = "cancel_requested"
# metadata.json key for what GroupMetadata does not hold but a resume must repeat exactly.
LAUNCH_KEY = "launch"
# Errors worth waiting out: the service restarts, or is briefly overloaded.
TRANSIENT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN}
)
_ACTIVE_STATES = (sandbox_pb2.SANDBOX_STATE_PENDING, sandbox_pb2.SANDBOX_STATE_RUNNING)
_ARTIFACTS_TIMEOUT_S = 3600.0


class PlanError(Exception):
    """`mleb run` was asked for something it cannot do; the message says what and why."""


# What a run group does.


@dataclass(frozen=True)
class LaunchSpec:
    """What every sandbox of the group is created with, beyond the budget."""

    image: str
    command: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    # Values live only in memory: a resume must be given them again.
    secret_env: dict[str, str] = field(default_factory=dict, compare=False)
    secret_env_names: tuple[str, ...] = ()
    mlebench_compat: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": list(self.command),
            "env": dict(self.env),
            "secret_env_names": sorted(self.secret_env_names),
        }


@dataclass(frozen=True)
class RunPlan:
    launch: LaunchSpec
    budget: Budget
    competition_set: str
    competition_ids: tuple[str, ...]
    seeds: int
    concurrency: int = 1
    max_retries: int = DEFAULT_MAX_RETRIES

    def pairs(self) -> list[tuple[str, int]]:
        """Seed-major, so a complete seed is ready early."""
        return [(c, s) for s in range(self.seeds) for c in self.competition_ids]


def parse_network(value: str) -> sandbox_pb2.NetworkPolicy:
    """`none`, `internet` or `allowlist:host1,host2[:port]`."""
    mode, _, hosts = value.strip().partition(":")
    if mode == "none" and not hosts:
        return sandbox_pb2.NetworkPolicy(mode=sandbox_pb2.NETWORK_MODE_NONE)
    if mode == "internet" and not hosts:
        return sandbox_pb2.NetworkPolicy(mode=sandbox_pb2.NETWORK_MODE_INTERNET)
    allowed = [h.strip() for h in hosts.split(",") if h.strip()]
    if mode == "allowlist" and allowed:
        return sandbox_pb2.NetworkPolicy(
            mode=sandbox_pb2.NETWORK_MODE_ALLOWLIST, allowed_hosts=allowed
        )
    raise PlanError(f"--network {value!r}: expected none, internet or allowlist:HOST[,HOST...]")


def read_competition_file(path: Path) -> tuple[str, ...]:
    """One competition id a line; blank lines and `#` comments are skipped, repeats dropped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PlanError(f"--competitions {path}: cannot read ({exc.strerror or exc})") from exc
    ids = [line.split("#", 1)[0].strip() for line in lines]
    found = tuple(dict.fromkeys(i for i in ids if i))
    if not found:
        raise PlanError(f"--competitions {path}: the file names no competition")
    return found


async def resolve_competitions(client: AsyncClient, spec: str) -> tuple[str, ...]:
    """A split name (low, lite, medium, high, all, builtin) through the registry's ListSplits,
    or a file of ids; every id must be known to the registry and have prepared data."""
    name = canonical_split(spec)
    if name in SPLITS:
        splits = {s.name: tuple(s.competition_ids) for s in (await client.list_splits()).splits}
        if not splits.get(name):
            raise PlanError(f"the registry has no competitions in split {name!r}")
        ids = splits[name]
    elif Path(spec).is_file():
        ids = read_competition_file(Path(spec))
    else:
        raise PlanError(
            f"--competitions {spec!r} is neither a split (low, lite, medium, high, all, builtin) "
            "nor a file of competition ids"
        )

    async def problem(competition_id: str) -> str:
        try:
            competition = (await client.get_competition(competition_id)).competition
        except NotFound:
            return f"{competition_id} (unknown to the registry)"
        if competition.data_status != registry_pb2.DATA_STATUS_PREPARED:
            return f"{competition_id} (no prepared data)"
        return ""

    problems = [p for p in await asyncio.gather(*map(problem, ids)) if p]
    if problems:
        raise PlanError(f"cannot run {len(problems)} competition(s): {', '.join(problems)}")
    return ids


def idempotency_key(group: str, competition_id: str, seed: int, attempt: int) -> str:
    return f"mleb-run/{group}/{competition_id}/{seed}/{attempt}"


def create_request(
    plan: RunPlan, group: str, record: RunRecord, attempt: int
) -> sandbox_pb.CreateSandboxRequest:
    launch, budget = plan.launch, plan.budget
    time_limit = duration_pb2.Duration()
    time_limit.FromNanoseconds(int(budget.time_limit_s * 1e9))
    return sandbox_pb.CreateSandboxRequest(
        competition_id=record.competition_id,
        image=launch.image,
        command=list(launch.command),
        env={**launch.env, SEED_ENV: str(record.seed)},
        secret_env=launch.secret_env,
        resources=sandbox_pb2.Resources(
            cpus=budget.cpus, memory_bytes=budget.memory_bytes, gpu_count=budget.gpus
        ),
        time_limit=time_limit,
        network=parse_network(budget.network),
        labels={RUN_GROUP_LABEL: group, RUN_ID_LABEL: record.run_id, SEED_LABEL: str(record.seed)},
        idempotency_key=idempotency_key(group, record.competition_id, record.seed, attempt),
        wait_for_gpus=True,
        mlebench_compat=launch.mlebench_compat,
    )


# The group folder.


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_group_metadata(group_dir: Path, metadata: GroupMetadata, launch: LaunchSpec) -> None:
    """metadata.json as records.py writes it, plus the launch settings a resume repeats."""
    write_json_atomic(
        group_dir / METADATA_FILE, {**metadata.to_dict(), LAUNCH_KEY: launch.to_dict()}
    )


def read_group(group_dir: Path) -> tuple[GroupMetadata, LaunchSpec]:
    """The plan a group was started with (without secret values)."""
    path = group_dir / METADATA_FILE
    if not path.is_file():
        raise PlanError(f"{group_dir}: no {METADATA_FILE}; not a run group made by `mleb run`")
    data = read_json(path)
    metadata = GroupMetadata.from_dict(data, str(path))
    launch = data.get(LAUNCH_KEY)
    if metadata.schema_version == 0 or metadata.budget is None or not isinstance(launch, dict):
        raise PlanError(f"{path}: not written by `mleb run`, so it cannot be resumed")
    return metadata, LaunchSpec(
        image=metadata.agent_image,
        command=tuple(launch.get("command", ())),
        env=dict(launch.get("env", {})),
        secret_env_names=tuple(launch.get("secret_env_names", ())),
        mlebench_compat=metadata.mlebench_compat,
    )


def plan_of(metadata: GroupMetadata, launch: LaunchSpec) -> RunPlan:
    assert metadata.budget is not None
    return RunPlan(
        launch=launch,
        budget=metadata.budget,
        competition_set=metadata.competition_set,
        competition_ids=metadata.competition_ids,
        seeds=metadata.seeds,
        concurrency=metadata.concurrency,
        max_retries=metadata.max_infrastructure_retries,
    )


def plan_differences(stored: RunPlan, asked: RunPlan) -> list[str]:
    """What a resume may not change: everything that decides what each run is."""
    checks = {
        "--agent": (stored.launch.image, asked.launch.image),
        "--command": (stored.launch.command, asked.launch.command),
        "--env": (stored.launch.env, asked.launch.env),
        "--secret-env names": (
            sorted(stored.launch.secret_env_names),
            sorted(asked.launch.secret_env_names),
        ),
        "--mlebench-compat": (stored.launch.mlebench_compat, asked.launch.mlebench_compat),
        "--competitions": (stored.competition_ids, asked.competition_ids),
        "--seeds": (stored.seeds, asked.seeds),
        "budget (--time-limit, --gpus-per-run, --cpus, --memory, --network)": (
            stored.budget,
            asked.budget,
        ),
    }
    return [name for name, (before, now) in checks.items() if before != now]


def _metadata(name: str, plan: RunPlan, mleb_version: str, created_at: str,
              runs: dict[str, bool]) -> GroupMetadata:  # fmt: skip
    return GroupMetadata(
        run_group=name,
        created_at=created_at,
        runs=runs,
        mleb_version=mleb_version,
        agent_image=plan.launch.image,
        competition_set=plan.competition_set,
        competition_ids=plan.competition_ids,
        seeds=plan.seeds,
        concurrency=plan.concurrency,
        budget=plan.budget,
        max_infrastructure_retries=plan.max_retries,
        mlebench_compat=plan.launch.mlebench_compat,
    )


def prepare_group(group_dir: Path, plan: RunPlan, mleb_version: str) -> dict[str, RunRecord]:
    """Creates the group (or completes a half-made one): metadata.json, then a folder and a
    PENDING run.json per (competition, seed), so every pair has its run id from the start."""
    group_dir.mkdir(parents=True, exist_ok=True)
    if not (group_dir / METADATA_FILE).is_file():
        write_group_metadata(
            group_dir, _metadata(group_dir.name, plan, mleb_version, _now(), {}), plan.launch
        )
    records = load_records(group_dir)
    by_pair = {(r.competition_id, r.seed): r for r in records.values()}
    for competition_id, seed in plan.pairs():
        if (competition_id, seed) in by_pair:
            continue
        run_id = new_run_id(competition_id)
        record = RunRecord(
            run_id=run_id,
            competition_id=competition_id,
            seed=seed,
            image=plan.launch.image,
            budget=plan.budget,
            created_at=_now(),
        )
        write_run(create_run_dir(group_dir, run_id), record)
        records[run_id] = record
    return records


def load_records(group_dir: Path) -> dict[str, RunRecord]:
    return {p.parent.name: read_run(p.parent) for p in sorted(group_dir.glob(f"*/{RUN_FILE}"))}


def is_settled(record: RunRecord) -> bool:
    """Finished for good: a resume skips it. Cancelled and infrastructure-failed runs run
    again when the group is resumed."""
    if record.state in (RunState.SUCCEEDED, RunState.TIMED_OUT):
        return True
    return record.state is RunState.FAILED and record.failure_type is not FailureType.INFRASTRUCTURE


def retryable(attempt: Attempt) -> bool:
    return attempt.state is RunState.FAILED and attempt.failure_type is FailureType.INFRASTRUCTURE


# Progress.


@dataclass
class RunProgress:
    """One run as `mleb run` shows it."""

    run_id: str
    competition_id: str
    seed: int
    state: RunState
    attempt: int = 0
    sandbox_id: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    latest_line: str = ""
    note: str = ""

    def elapsed_s(self, now: datetime | None = None) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at or now or datetime.now(UTC)
        return max(0.0, (end - self.started_at).total_seconds())


@dataclass(frozen=True)
class GroupResult:
    group_dir: Path
    report_path: Path | None
    records: dict[str, RunRecord]
    cancelled: bool
    # Every run had finished and the newest report graded them all: nothing was done.
    already_graded: bool = False


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
            spent = 0 if fresh else _trailing_failures(record.attempts)
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
                        self._save(replace(record, state=RunState.CANCELLED, finished_at=_now()))
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
            while sandbox.state in _ACTIVE_STATES:
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
                finished_at=_now(),
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
        """Grades every run through GraderService into `<timestamp>_grading_report.json`, in
        (competition, seed) order, and records which runs succeeded in metadata.json."""
        records = sorted(self.records.values(), key=lambda r: (r.competition_id, r.seed))
        reports = [await self._grade_run(r) for r in records]
        path = self.group_dir / grading_report_name()
        write_json_atomic(path, aggregate_reports(reports))
        await self._rpc(export_chain, self.client, self.group_dir)
        metadata, launch = read_group(self.group_dir)
        runs = {r.run_id: r.state is RunState.SUCCEEDED for r in records}
        write_group_metadata(self.group_dir, replace(metadata, runs=runs), launch)
        return path

    async def _grade_run(self, record: RunRecord) -> CompetitionReport:
        shown = submission_path(record.run_id)
        file = self.group_dir / shown
        if file.is_file() and not file.is_symlink():
            try:
                reply = await self._rpc(
                    self.client.grade_submission, record.competition_id, file, submission_path=shown
                )
                statement = self.group_dir / record.run_id / GRADING_STATEMENT_FILE
                write_envelope(statement, reply.statement)
                return report_from_proto(reply.report)
            except MlebError as exc:
                # Refused outright (too large, unreadable): graded as an invalid submission.
                if exc.code in TRANSIENT:
                    raise
                return await self._ungraded(record, shown, exists=True, error=str(exc))
        return await self._ungraded(record, shown, exists=False, error=NO_SUBMISSION)

    async def _ungraded(self, record: RunRecord, shown: str, *, exists: bool,
                        error: str) -> CompetitionReport:  # fmt: skip
        reply = await self._rpc(self.client.rank_score, record.competition_id, None)
        return report_without_score(
            record.competition_id,
            reply.ranking,
            submission_path=shown,
            submission_exists=exists,
            error=error,
        )


def _trailing_failures(attempts: Iterable[Attempt]) -> int:
    count = 0
    for attempt in reversed(list(attempts)):
        if not retryable(attempt):
            break
        count += 1
    return count


# Cancelling.


@dataclass(frozen=True)
class CancelResult:
    stopped: list[str]
    runs_cancelled: list[str]


async def cancel_group(client: AsyncClient, group_dir: Path) -> CancelResult:
    """Stops every sandbox of the group and marks its unfinished runs CANCELLED. The marker
    file goes first, so a `mleb run` still going starts nothing more."""
    if not (group_dir / METADATA_FILE).is_file():
        raise PlanError(f"{group_dir}: no {METADATA_FILE}; not a run group")
    (group_dir / CANCEL_FILE).write_text(_now() + "\n", encoding="utf-8")
    name = group_dir.name
    active, token = [], ""
    while True:
        page = await client.list_sandboxes(
            sandbox_pb.ListSandboxesRequest(
                labels={RUN_GROUP_LABEL: name},
                states=_ACTIVE_STATES,
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
            replace(record, attempts=tuple(attempts), state=RunState.CANCELLED, finished_at=_now()),
        )
        cancelled.append(run_id)
    return CancelResult(active, cancelled)
