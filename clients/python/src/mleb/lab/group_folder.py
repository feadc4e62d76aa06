"""The run-group folder as a whole: `mleb run` makes and resumes it, `mleb report` and
`mleb verify` load it. The one module that writes and reads metadata.json, so the launch
settings a resume must repeat are kept beside what records.GroupMetadata holds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mleb.lab.records import (
    GRADING_REPORT_SUFFIX,
    METADATA_FILE,
    RUN_FILE,
    GroupMetadata,
    RecordError,
    RunGroup,
    RunRecord,
    create_run_dir,
    new_run_id,
    read_grading_entries,
    read_json,
    read_run,
    write_json_atomic,
    write_run,
)
from mleb.lab.run_plan import AgentLaunch, PlanError, RunPlan

# Written by `mleb cancel`: a running `mleb run` starts nothing more and stops what it started.
CANCEL_FILE = "cancel_requested"
# metadata.json key for what GroupMetadata does not hold but a resume must repeat exactly.
LAUNCH_KEY = "launch"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_group_metadata(group_dir: Path, metadata: GroupMetadata, launch: AgentLaunch) -> None:
    """metadata.json: GroupMetadata, plus the launch settings a resume repeats."""
    write_json_atomic(
        group_dir / METADATA_FILE, {**metadata.to_dict(), LAUNCH_KEY: launch.to_dict()}
    )


def read_group_metadata(group_dir: Path) -> GroupMetadata:
    """Any group's metadata.json, MLE-bench's own included."""
    path = group_dir / METADATA_FILE
    return GroupMetadata.from_dict(read_json(path), str(path))


def read_group(group_dir: Path) -> tuple[GroupMetadata, AgentLaunch]:
    """The plan a group was started with (without secret values)."""
    path = group_dir / METADATA_FILE
    if not path.is_file():
        raise PlanError(f"{group_dir}: no {METADATA_FILE}; not a run group made by `mleb run`")
    data = read_json(path)
    metadata = GroupMetadata.from_dict(data, str(path))
    launch = data.get(LAUNCH_KEY)
    if metadata.schema_version == 0 or metadata.budget is None or not isinstance(launch, dict):
        raise PlanError(f"{path}: not written by `mleb run`, so it cannot be resumed")
    return metadata, AgentLaunch(
        image=metadata.agent_image,
        command=tuple(launch.get("command", ())),
        env=dict(launch.get("env", {})),
        secret_env_names=tuple(launch.get("secret_env_names", ())),
        mlebench_compat=metadata.mlebench_compat,
    )


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
            group_dir, _metadata(group_dir.name, plan, mleb_version, now(), {}), plan.launch
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
            created_at=now(),
        )
        write_run(create_run_dir(group_dir, run_id), record)
        records[run_id] = record
    return records


def load_records(group_dir: Path) -> dict[str, RunRecord]:
    return {p.parent.name: read_run(p.parent) for p in sorted(group_dir.glob(f"*/{RUN_FILE}"))}


def load_run_group(path: Path) -> RunGroup:
    """Reads a run group; its newest `*_grading_report.json` is the one that counts, since a
    resumed group is graded again as a whole."""
    if not path.is_dir():
        raise RecordError(f"{path}: not a run-group folder")
    reports = sorted(path.glob(f"*{GRADING_REPORT_SUFFIX}"))
    if not reports:
        raise RecordError(
            f"{path}: no *{GRADING_REPORT_SUFFIX} in it; a run group is reported once graded"
        )
    metadata = read_group_metadata(path) if (path / METADATA_FILE).is_file() else None
    runs = {}
    for run_file in sorted(path.glob(f"*/{RUN_FILE}")):
        record = read_run(run_file.parent)
        runs[run_file.parent.name] = record
    return RunGroup(path, metadata, runs, reports[-1], read_grading_entries(reports[-1]))
