"""run.json / metadata.json records, the folder layout, and loading a run group."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mleb.lab.group_folder import load_run_group, read_group_metadata
from mleb.lab.records import (
    SCHEMA_VERSION,
    FailureType,
    GroupMetadata,
    RecordError,
    RunState,
    attempt_from_sandbox,
    group_dir_name,
    read_run,
    write_run,
)
from mleb.sandbox.v1 import sandbox_pb2

from tests.unit.runs.run_group_builder import GROUP_ONE, Run, run_record, write_group

STARTED = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_run_record_round_trips(tmp_path: Path) -> None:
    record = run_record(Run("alpha", 3, "gold", retries=2), "alpha_1234", "lab/agent:1")
    write_run(tmp_path, record)
    assert read_run(tmp_path) == record
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["seed"] == 3
    assert [a["failure_type"] for a in data["attempts"]] == ["infrastructure"] * 2 + ["none"]
    assert record.infrastructure_retries == 2
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary left behind


def test_group_layout(tmp_path: Path) -> None:
    group = write_group(tmp_path, GROUP_ONE, started=STARTED, image="ghcr.io/lab/agent:v2")
    assert group.name == "2025-03-04T05-06-07-UTC_run-group_ghcr.io-lab-agent-v2"
    assert group.name == group_dir_name("ghcr.io/lab/agent:v2", STARTED)
    run_dirs = sorted(p for p in group.iterdir() if p.is_dir())
    assert len(run_dirs) == 6
    for run_dir in run_dirs:
        assert {p.name for p in run_dir.iterdir()} == {"submission", "logs", "code", "run.json"}
        assert run_dir.name.startswith(f"{read_run(run_dir).competition_id}_")
    metadata = read_group_metadata(group)
    assert metadata.seeds == 2 and metadata.budget is not None and len(metadata.runs) == 6
    assert GroupMetadata.from_dict(metadata.to_dict()) == metadata
    assert len(list(group.glob("*_grading_report.json"))) == 1


def test_mlebench_metadata_is_read(tmp_path: Path) -> None:
    """MLE-bench's own metadata.json: run_group, created_at and runs only."""
    data = {
        "run_group": "2024-08-01T10-00-00-GMT_run-group_aide",
        "created_at": "2024-08-01T10-00-00-GMT",
        "runs": {"spaceship-titanic_ab12": {"success": True}},
    }
    metadata = GroupMetadata.from_dict(data)
    assert metadata.schema_version == 0 and metadata.runs == {"spaceship-titanic_ab12": True}
    assert metadata.budget is None and metadata.mleb_version == ""


def test_newest_grading_report_counts(tmp_path: Path) -> None:
    group = write_group(tmp_path, GROUP_ONE, started=STARTED)
    (group / "2024-01-01T00-00-00-UTC_grading_report.json").write_text("{}")
    loaded = load_run_group(group)
    assert loaded.grading_report_path.name.startswith("2025-03-04")
    assert len(loaded.entries) == 6 and len(loaded.runs) == 6
    assert all(loaded.run_for(e).competition_id == e["competition_id"] for e in loaded.entries)


def _break_run(group: Path, change) -> None:
    path = next(group.glob("*/run.json"))
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _break_report(group: Path, change) -> None:
    path = next(group.glob("*_grading_report.json"))
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda g: _break_run(g, lambda d: d.update(schema_version=SCHEMA_VERSION + 1)),
         "newer than this mleb reads"),
        (lambda g: _break_run(g, lambda d: d.update(seed="1")), "field 'seed' has the wrong type"),
        (lambda g: _break_run(g, lambda d: d.update(seed=True)), "field 'seed' has the wrong type"),
        (lambda g: _break_run(g, lambda d: d.update(failure_type="cosmic")),
         "'failure_type' is 'cosmic', expected one of: none, agent, infrastructure"),
        (lambda g: _break_run(g, lambda d: d.pop("budget")), "missing field 'budget'"),
        (lambda g: _break_run(g, lambda d: d["attempts"].append(3)), "]: expected a JSON object"),
        (lambda g: next(g.glob("*/run.json")).write_text("{"), "not valid JSON"),
        (lambda g: (g / "metadata.json").write_text("[]"), "metadata.json: expected a JSON object"),
        (lambda g: _break_report(g, lambda d: d["competition_reports"][2].pop("gold_medal")),
         "competition_reports[2]: missing field 'gold_medal'"),
        (lambda g: _break_report(g, lambda d: d.pop("competition_reports")),
         "missing field 'competition_reports'"),
        (lambda g: next(g.glob("*_grading_report.json")).unlink(),
         "no *_grading_report.json in it"),
    ],
)  # fmt: skip
def test_unusable_files_are_named(tmp_path: Path, breakage, message: str) -> None:
    group = write_group(tmp_path, GROUP_ONE, started=STARTED)
    breakage(group)
    with pytest.raises(RecordError) as caught:
        load_run_group(group)
    assert message in str(caught.value)
    assert str(group) in str(caught.value)


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="not a run-group folder"):
        load_run_group(tmp_path / "missing")


@pytest.mark.parametrize(
    ("state", "failure_class", "reason", "expected"),
    [
        (sandbox_pb2.SANDBOX_STATE_SUCCEEDED, 0, 0, (RunState.SUCCEEDED, FailureType.NONE, "")),
        (sandbox_pb2.SANDBOX_STATE_FAILED, sandbox_pb2.FAILURE_CLASS_AGENT,
         sandbox_pb2.FAILURE_REASON_OUT_OF_MEMORY,
         (RunState.FAILED, FailureType.AGENT, "out_of_memory")),
        (sandbox_pb2.SANDBOX_STATE_FAILED, sandbox_pb2.FAILURE_CLASS_INFRASTRUCTURE,
         sandbox_pb2.FAILURE_REASON_LOST,
         (RunState.FAILED, FailureType.INFRASTRUCTURE, "lost")),
        (sandbox_pb2.SANDBOX_STATE_TIMED_OUT, sandbox_pb2.FAILURE_CLASS_AGENT, 0,
         (RunState.TIMED_OUT, FailureType.AGENT, "")),
    ],
)  # fmt: skip
def test_attempt_from_sandbox(state, failure_class, reason, expected) -> None:
    sandbox = sandbox_pb2.Sandbox(
        id="sbx-9",
        image_digest="sha256:00",
        state=state,
        failure_class=failure_class,
        failure_reason=reason,
        failure_message="boom" if reason else "",
    )
    attempt = attempt_from_sandbox(sandbox)
    assert (attempt.state, attempt.failure_type, attempt.failure_reason) == expected
    assert attempt.sandbox_id == "sbx-9" and attempt.sandbox["image_digest"] == "sha256:00"
