"""The orchestrator's plain parts: plans, requests and the group folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mleb.lab.group_folder import LAUNCH_KEY, load_run_group, prepare_group, read_group
from mleb.lab.records import Attempt, Budget, FailureType, RunRecord, RunState, read_run
from mleb.lab.run_plan import (
    RUN_GROUP_LABEL,
    RUN_ID_LABEL,
    SEED_ENV,
    AgentLaunch,
    PlanError,
    RunPlan,
    create_request,
    parse_network,
    plan_differences,
    plan_of,
    read_competition_file,
)
from mleb.lab.run_progress import is_settled, retryable
from mleb.sandbox.v1 import sandbox_pb2

SECRET = "sk-do-not-store-me"


def make_plan(**changes) -> RunPlan:
    fields = {
        "launch": AgentLaunch(
            image="ghcr.io/acme/agent:v1",
            command=("python", "agent.py"),
            env={"MODE": "fast"},
            secret_env={"API_KEY": SECRET},
            secret_env_names=("API_KEY",),
        ),
        "budget": Budget(
            time_limit_s=3600,
            gpus=1,
            cpus=4,
            memory_bytes=2**30,
            network="allowlist:api.openai.com",
        ),
        "competition_set": "low",
        "competition_ids": ("alpha", "beta"),
        "seeds": 2,
        "concurrency": 2,
    }
    return RunPlan(**{**fields, **changes})


@pytest.mark.parametrize(
    ("value", "mode", "hosts"),
    [
        ("none", sandbox_pb2.NETWORK_MODE_NONE, []),
        ("internet", sandbox_pb2.NETWORK_MODE_INTERNET, []),
        ("allowlist:api.openai.com", sandbox_pb2.NETWORK_MODE_ALLOWLIST, ["api.openai.com"]),
        ("allowlist:a.com, b.com:443", sandbox_pb2.NETWORK_MODE_ALLOWLIST, ["a.com", "b.com:443"]),
    ],
)
def test_network_policies(value, mode, hosts) -> None:
    policy = parse_network(value)
    assert policy.mode == mode and list(policy.allowed_hosts) == hosts


@pytest.mark.parametrize("value", ["allowlist:", "allowlist", "none:x", "open", ""])
def test_bad_network_is_refused_with_the_accepted_forms(value) -> None:
    with pytest.raises(PlanError, match="none, internet or allowlist"):
        parse_network(value)


def test_competition_file_skips_comments_blanks_and_repeats(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("# mine\nalpha\n\n beta  # second\nalpha\n")
    assert read_competition_file(path) == ("alpha", "beta")
    path.write_text("# nothing\n\n")
    with pytest.raises(PlanError, match="names no competition"):
        read_competition_file(path)


def test_the_request_carries_the_seed_labels_and_a_key_per_attempt(tmp_path: Path) -> None:
    plan = make_plan()
    record = RunRecord("beta_1", "beta", 1, plan.launch.image, plan.budget)
    request = create_request(plan, "group-a", record, attempt=0)
    assert request.env == {"MODE": "fast", SEED_ENV: "1"}
    assert request.secret_env == {"API_KEY": SECRET}
    assert request.labels[RUN_GROUP_LABEL] == "group-a" and request.labels[RUN_ID_LABEL] == "beta_1"
    assert request.wait_for_gpus and request.resources.gpu_count == 1
    assert request.time_limit.seconds == 3600 and list(request.command) == ["python", "agent.py"]
    assert list(request.network.allowed_hosts) == ["api.openai.com"]
    keys = {
        create_request(plan, group, r, attempt).idempotency_key
        for group in ("group-a", "group-b")
        for r in (record, RunRecord("beta_0", "beta", 0, "", plan.budget))
        for attempt in (0, 1)
    }
    assert len(keys) == 8
    assert create_request(plan, "group-a", record, 0) == request  # a resume repeats it exactly


def test_a_resume_may_change_concurrency_but_nothing_a_run_depends_on() -> None:
    plan = make_plan()
    assert plan_differences(plan, make_plan(concurrency=9, max_retries=0)) == []
    assert plan_differences(plan, make_plan(seeds=3)) == ["--seeds"]
    changed = make_plan(launch=AgentLaunch(image="other"), budget=Budget(time_limit_s=60))
    assert plan_differences(plan, changed)[0] == "--agent"
    assert plan_differences(plan, changed)[-1].startswith("budget")


def test_the_group_gets_every_pair_up_front_and_keeps_its_run_ids(tmp_path: Path) -> None:
    group = tmp_path / "group"
    plan = make_plan()
    records = prepare_group(group, plan, "1.0")
    assert sorted((r.competition_id, r.seed) for r in records.values()) == [
        ("alpha", 0), ("alpha", 1), ("beta", 0), ("beta", 1),
    ]  # fmt: skip
    assert all(r.state is RunState.PENDING for r in records.values())
    for run_id in records:
        assert {p.name for p in (group / run_id).iterdir()} == {
            "run.json", "submission", "logs", "code",
        }  # fmt: skip
    # Half made (killed while creating folders): only the missing pair is added.
    lost = next(r for r in records.values() if (r.competition_id, r.seed) == ("beta", 1))
    (group / lost.run_id / "run.json").unlink()
    again = prepare_group(group, plan, "1.0")
    assert len(again) == 4 and set(records) - set(again) == {lost.run_id}
    # The plan comes back from metadata.json, with the secret's name but never its value.
    metadata, launch = read_group(group)
    assert plan_of(metadata, launch) == plan
    assert launch.secret_env == {} and launch.secret_env_names == ("API_KEY",)
    for path in group.rglob("*.json"):
        assert SECRET not in path.read_text()
    assert json.loads((group / "metadata.json").read_text())[LAUNCH_KEY]["env"] == {"MODE": "fast"}


def test_a_folder_not_made_by_mleb_run_cannot_be_resumed(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text(json.dumps({"run_group": "x", "runs": {}}))
    with pytest.raises(PlanError, match="cannot be resumed"):
        read_group(tmp_path)
    with pytest.raises(PlanError, match=r"no metadata\.json"):
        read_group(tmp_path / "missing")


def _attempt(state: RunState, failure: FailureType = FailureType.NONE) -> Attempt:
    return Attempt("sbx", state, failure)


@pytest.mark.parametrize(
    ("state", "failure", "settled"),
    [
        (RunState.SUCCEEDED, FailureType.NONE, True),
        (RunState.TIMED_OUT, FailureType.NONE, True),
        (RunState.FAILED, FailureType.AGENT, True),
        (RunState.FAILED, FailureType.INFRASTRUCTURE, False),
        (RunState.CANCELLED, FailureType.NONE, False),
        (RunState.RUNNING, FailureType.NONE, False),
        (RunState.PENDING, FailureType.NONE, False),
    ],
)
def test_which_runs_a_resume_skips(state, failure, settled) -> None:
    record = RunRecord("a_1", "a", 0, "img", Budget(60), state=state, failure_type=failure)
    assert is_settled(record) is settled
    assert retryable(_attempt(state, failure)) is (
        state is RunState.FAILED and failure is FailureType.INFRASTRUCTURE
    )


def test_a_prepared_group_reads_back_as_a_run_group_once_graded(tmp_path: Path) -> None:
    group = tmp_path / "group"
    records = prepare_group(group, make_plan(), "1.0")
    (group / "2025-01-01T00-00-00-UTC_grading_report.json").write_text(
        json.dumps({"competition_reports": []})
    )
    loaded = load_run_group(group)
    assert set(loaded.runs) == set(records)
    assert loaded.metadata.agent_image == "ghcr.io/acme/agent:v1"
    assert read_run(group / next(iter(records))).budget.network == "allowlist:api.openai.com"
