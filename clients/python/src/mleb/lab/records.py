"""The run-group folder's files, as typed records (docs/reports.md has the layout).

run.json and grading reports are read and written here; metadata.json and whole groups go
through mleb/lab/group_folder.py. The layout follows MLE-bench's, so `mleb report` also reads
MLE-bench's own run groups (their metadata.json has no schema_version and their runs have no
run.json).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any, TypeVar

from google.protobuf import json_format

from mleb.files import UnsafeFile, read_regular
from mleb.sandbox.v1 import sandbox_pb2

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
METADATA_FILE = "metadata.json"
GRADING_REPORT_SUFFIX = "_grading_report.json"
RUN_SUBDIRS = ("submission", "logs", "code")
# The booleans MLE-bench's aggregation reads from every grading-report entry.
GRADING_FLAGS = (
    "gold_medal",
    "silver_medal",
    "bronze_medal",
    "above_median",
    "submission_exists",
    "valid_submission",
)

T = TypeVar("T")


class RecordError(ValueError):
    """A run-group file that cannot be used; the message names the file and the field."""


class FailureType(StrEnum):
    """Who a failed run is blamed on: infrastructure failures are retried, agent ones not."""

    NONE = "none"
    AGENT = "agent"
    INFRASTRUCTURE = "infrastructure"


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (RunState.PENDING, RunState.RUNNING)


def _field(data: Mapping[str, Any], key: str, kind: type[T] | tuple[type, ...], where: str,
           default: Any = ...) -> T:  # fmt: skip
    if key not in data or data[key] is None:
        if default is ...:
            raise RecordError(f"{where}: missing field {key!r}")
        return default
    value = data[key]
    # bool is an int in Python; a JSON true must not pass as a count.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise RecordError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _enum(data: Mapping[str, Any], key: str, kind: type[StrEnum], where: str, default: Any):
    raw = _field(data, key, str, where, default.value)
    try:
        return kind(raw)
    except ValueError as exc:
        allowed = ", ".join(member.value for member in kind)
        raise RecordError(f"{where}: {key!r} is {raw!r}, expected one of: {allowed}") from exc


def _check_version(data: Mapping[str, Any], where: str) -> None:
    version = _field(data, "schema_version", int, where)
    if version > SCHEMA_VERSION:
        raise RecordError(
            f"{where}: schema_version {version} is newer than this mleb reads "
            f"({SCHEMA_VERSION}); upgrade mleb"
        )


@dataclass(frozen=True)
class Budget:
    """The time and resources one run may use. Zero cpus/memory mean the sandbox default."""

    time_limit_s: float
    gpus: int = 0
    cpus: float = 0.0
    memory_bytes: int = 0
    # "none", "allowlist:host1,host2" or "internet", as `mleb run --network` takes it.
    network: str = "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_limit_s": self.time_limit_s,
            "gpus": self.gpus,
            "cpus": self.cpus,
            "memory_bytes": self.memory_bytes,
            "network": self.network,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Budget:
        return cls(
            time_limit_s=float(_field(data, "time_limit_s", (int, float), where)),
            gpus=_field(data, "gpus", int, where, 0),
            cpus=float(_field(data, "cpus", (int, float), where, 0.0)),
            memory_bytes=_field(data, "memory_bytes", int, where, 0),
            network=_field(data, "network", str, where, "none"),
        )


@dataclass(frozen=True)
class Attempt:
    """One sandbox started for a run; a run has several when infrastructure failures retried."""

    sandbox_id: str
    state: RunState
    failure_type: FailureType = FailureType.NONE
    failure_reason: str = ""
    failure_message: str = ""
    # The SandboxService record verbatim (protobuf JSON), kept for audits; reports do not
    # read it.
    sandbox: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sandbox_id": self.sandbox_id,
            "state": self.state.value,
            "failure_type": self.failure_type.value,
            "failure_reason": self.failure_reason,
            "failure_message": self.failure_message,
            "sandbox": self.sandbox,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> Attempt:
        return cls(
            sandbox_id=_field(data, "sandbox_id", str, where),
            state=_enum(data, "state", RunState, where, RunState.PENDING),
            failure_type=_enum(data, "failure_type", FailureType, where, FailureType.NONE),
            failure_reason=_field(data, "failure_reason", str, where, ""),
            failure_message=_field(data, "failure_message", str, where, ""),
            sandbox=_field(data, "sandbox", dict, where, {}),
        )


@dataclass(frozen=True)
class RunRecord:
    """run.json: one (competition, seed) run and its outcome."""

    run_id: str
    competition_id: str
    seed: int
    image: str
    budget: Budget
    image_digest: str = ""
    state: RunState = RunState.PENDING
    # The run's final outcome; earlier attempts keep their own.
    failure_type: FailureType = FailureType.NONE
    failure_reason: str = ""
    failure_message: str = ""
    attempts: tuple[Attempt, ...] = ()
    # ISO-8601 timestamps.
    created_at: str = ""
    finished_at: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def infrastructure_retries(self) -> int:
        """Attempts lost to infrastructure failures before the last one."""
        return sum(a.failure_type is FailureType.INFRASTRUCTURE for a in self.attempts[:-1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "competition_id": self.competition_id,
            "seed": self.seed,
            "image": self.image,
            "image_digest": self.image_digest,
            "budget": self.budget.to_dict(),
            "state": self.state.value,
            "failure_type": self.failure_type.value,
            "failure_reason": self.failure_reason,
            "failure_message": self.failure_message,
            "attempts": [attempt.to_dict() for attempt in self.attempts],
            "created_at": self.created_at,
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = RUN_FILE) -> RunRecord:
        if not isinstance(data, Mapping):
            raise RecordError(f"{where}: expected a JSON object")
        _check_version(data, where)
        attempts = _field(data, "attempts", list, where, [])
        return cls(
            schema_version=data["schema_version"],
            run_id=_field(data, "run_id", str, where),
            competition_id=_field(data, "competition_id", str, where),
            seed=_field(data, "seed", int, where),
            image=_field(data, "image", str, where),
            image_digest=_field(data, "image_digest", str, where, ""),
            budget=Budget.from_dict(_field(data, "budget", dict, where), f"{where}: budget"),
            state=_enum(data, "state", RunState, where, RunState.PENDING),
            failure_type=_enum(data, "failure_type", FailureType, where, FailureType.NONE),
            failure_reason=_field(data, "failure_reason", str, where, ""),
            failure_message=_field(data, "failure_message", str, where, ""),
            attempts=tuple(
                Attempt.from_dict(_object(a, f"{where}: attempts[{i}]"), f"{where}: attempts[{i}]")
                for i, a in enumerate(attempts)
            ),
            created_at=_field(data, "created_at", str, where, ""),
            finished_at=_field(data, "finished_at", str, where, ""),
        )


@dataclass(frozen=True)
class GroupMetadata:
    """metadata.json: what the run group was asked to do."""

    run_group: str
    created_at: str
    # MLE-bench's own key: run id -> whether the run finished without failing.
    runs: dict[str, bool] = field(default_factory=dict)
    mleb_version: str = ""
    agent_image: str = ""
    # What --competitions named (a split or a file) and the ids it resolved to.
    competition_set: str = ""
    competition_ids: tuple[str, ...] = ()
    seeds: int = 0
    concurrency: int = 0
    budget: Budget | None = None
    max_infrastructure_retries: int = 0
    mlebench_compat: bool = False
    # Audit-chain seqs of scoring calls made on purpose while sandboxes ran (for example a
    # human-reviewed check); `mleb verify` accepts these and names them.
    declared_grader_calls: tuple[int, ...] = ()
    # 0 marks a metadata.json written by MLE-bench itself.
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "run_group": self.run_group,
            "created_at": self.created_at,
            "mleb_version": self.mleb_version,
            "agent_image": self.agent_image,
            "competition_set": self.competition_set,
            "competition_ids": list(self.competition_ids),
            "seeds": self.seeds,
            "concurrency": self.concurrency,
            "budget": self.budget.to_dict() if self.budget else None,
            "max_infrastructure_retries": self.max_infrastructure_retries,
            "mlebench_compat": self.mlebench_compat,
            "declared_grader_calls": list(self.declared_grader_calls),
            "runs": {run_id: {"success": ok} for run_id, ok in self.runs.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = METADATA_FILE) -> GroupMetadata:
        if not isinstance(data, Mapping):
            raise RecordError(f"{where}: expected a JSON object")
        runs = {
            run_id: bool(_field(_object(entry, f"{where}: runs"), "success", bool, where, False))
            for run_id, entry in _field(data, "runs", dict, where, {}).items()
        }
        common: dict[str, Any] = {
            "run_group": _field(data, "run_group", str, where),
            "created_at": _field(data, "created_at", str, where, ""),
            "runs": runs,
        }
        if "schema_version" not in data:
            return cls(**common, schema_version=0)
        _check_version(data, where)
        budget = _field(data, "budget", dict, where, None)
        return cls(
            **common,
            schema_version=data["schema_version"],
            mleb_version=_field(data, "mleb_version", str, where, ""),
            agent_image=_field(data, "agent_image", str, where, ""),
            competition_set=_field(data, "competition_set", str, where, ""),
            competition_ids=tuple(_field(data, "competition_ids", list, where, [])),
            seeds=_field(data, "seeds", int, where, 0),
            concurrency=_field(data, "concurrency", int, where, 0),
            budget=Budget.from_dict(budget, f"{where}: budget") if budget else None,
            max_infrastructure_retries=_field(data, "max_infrastructure_retries", int, where, 0),
            declared_grader_calls=_seqs(data, where),
            mlebench_compat=_field(data, "mlebench_compat", bool, where, False),
        )


def _seqs(data: Mapping[str, Any], where: str) -> tuple[int, ...]:
    seqs = _field(data, "declared_grader_calls", list, where, [])
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seqs):
        raise RecordError(f"{where}: declared_grader_calls must list audit-chain seqs (integers)")
    return tuple(seqs)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(f"{where}: expected a JSON object")
    return value


# Folder names.


def timestamp(moment: datetime | None = None) -> str:
    """MLE-bench's timestamp format, `YYYY-MM-DDTHH-MM-SS-UTC`, used in folder and file names."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%S-UTC")


def group_dir_name(agent: str, moment: datetime | None = None) -> str:
    """`<timestamp>_run-group_<agent>`; the agent image's name with `/` and `:` made safe."""
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in agent)
    return f"{timestamp(moment)}_run-group_{safe}"


def new_run_id(competition_id: str) -> str:
    return f"{competition_id}_{uuid.uuid4()}"


def create_run_dir(group_dir: Path, run_id: str) -> Path:
    """The run's folder with MLE-bench's submission/, logs/ and code/ inside."""
    run_dir = group_dir / run_id
    for name in RUN_SUBDIRS:
        (run_dir / name).mkdir(parents=True, exist_ok=True)
    return run_dir


def grading_report_name(moment: datetime | None = None) -> str:
    return f"{timestamp(moment)}{GRADING_REPORT_SUFFIX}"


def submission_path(run_id: str) -> str:
    """What a run-group grading report's entry names as submission_path, even when no file was
    submitted: the report links entries to runs through the run id at its start."""
    return f"{run_id}/submission/submission.csv"


# Reading and writing.


def write_text_atomic(path: Path, text: str) -> None:
    """Replaces the file in one rename, so a killed `mleb run` never leaves half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


_LFS_POINTER = "version https://git-lfs.github.com/spec/v1"


# No record file is this big; a bigger one is refused before it is read.
MAX_RECORD_BYTES = 256 * 1024**2


def read_bounded(path: Path, limit: int = MAX_RECORD_BYTES) -> bytes:
    """A regular file's bytes, refusing links, FIFOs, devices and anything over `limit`: the
    folders read here may come from someone else (a run group sent for review)."""
    try:
        return read_regular(path, limit)
    except UnsafeFile as exc:
        raise RecordError(f"{path}: {exc}") from exc


def read_json(path: Path, limit: int = MAX_RECORD_BYTES) -> Any:
    try:
        text = read_bounded(path, limit).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON (not UTF-8 text)") from exc
    if text.startswith(_LFS_POINTER):
        # MLE-bench ships its runs/ folders (and leaderboards) in Git LFS: a plain clone
        # holds only these pointers.
        raise RecordError(
            f"{path}: a Git LFS pointer, not the file's content; run `git lfs pull` in the "
            "checkout it comes from (MLE-bench keeps runs/ in Git LFS), then report again"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise RecordError(f"{path}: not valid JSON (nested too deeply)") from exc


def write_run(run_dir: Path, record: RunRecord) -> None:
    write_json_atomic(run_dir / RUN_FILE, record.to_dict())


def read_run(run_dir: Path) -> RunRecord:
    path = run_dir / RUN_FILE
    return RunRecord.from_dict(read_json(path), str(path))


@dataclass(frozen=True)
class RunGroup:
    """One run-group folder as read from disk."""

    path: Path
    metadata: GroupMetadata | None
    runs: dict[str, RunRecord]
    grading_report_path: Path
    # The grading report's competition_reports entries, in file order.
    entries: tuple[dict[str, Any], ...]

    @property
    def name(self) -> str:
        return self.metadata.run_group if self.metadata else self.path.name

    def run_for(self, entry: Mapping[str, Any]) -> RunRecord | None:
        """The run a grading-report entry grades, found by a run id in its submission_path."""
        parts = PurePath(str(entry.get("submission_path") or "")).parts
        return next((self.runs[p] for p in reversed(parts) if p in self.runs), None)


def read_grading_entries(path: Path) -> tuple[dict[str, Any], ...]:
    """A grading report's competition_reports entries, each checked for MLE-bench's flags."""
    report = _object(read_json(path), str(path))
    entries = _field(report, "competition_reports", list, str(path))
    checked = []
    for index, entry in enumerate(entries):
        where = f"{path}: competition_reports[{index}]"
        _field(_object(entry, where), "competition_id", str, where)
        for flag in GRADING_FLAGS:
            _field(entry, flag, bool, where)
        checked.append(dict(entry))
    return tuple(checked)


def attempt_from_sandbox(sandbox: sandbox_pb2.Sandbox) -> Attempt:
    """An Attempt from the record SandboxService returns."""
    failure_types = {
        sandbox_pb2.FAILURE_CLASS_AGENT: FailureType.AGENT,
        sandbox_pb2.FAILURE_CLASS_INFRASTRUCTURE: FailureType.INFRASTRUCTURE,
    }
    state = sandbox_pb2.SandboxState.Name(sandbox.state).removeprefix("SANDBOX_STATE_").lower()
    reason = sandbox_pb2.FailureReason.Name(sandbox.failure_reason).removeprefix("FAILURE_REASON_")
    return Attempt(
        sandbox_id=sandbox.id,
        state=RunState(state) if state in RunState._value2member_map_ else RunState.PENDING,
        failure_type=failure_types.get(sandbox.failure_class, FailureType.NONE),
        failure_reason=reason.lower() if sandbox.failure_reason else "",
        failure_message=sandbox.failure_message,
        sandbox=json_format.MessageToDict(sandbox, preserving_proto_field_name=True),
    )
