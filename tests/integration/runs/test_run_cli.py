"""`mleb run`, `mleb logs` and `mleb cancel` against real registry, grader and sandbox servers:
whole groups graded and reported, retries, a CLI killed mid-run and resumed, cancel, logs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import docker
import docker.errors
import pytest
import typer
from mleb.client import AsyncClient
from mleb.lab import run_cmds
from mleb.lab.group_folder import load_run_group
from mleb.lab.records import RunState, read_run
from mleb.lab.report_cmds import report
from mleb.lab.run_plan import RUN_GROUP_LABEL
from mleb.sandbox.v1 import sandbox_pb2
from mleb.sandbox.v1 import sandbox_service_pb2 as sandbox_pb
from typer.testing import CliRunner

from services.sandbox.lifecycle.core import INSTANCE_LABEL
from tests.fixtures.cluster_fixtures import slurm_env
from tests.fixtures.grading_stack import COMPETITION, IDS, TRUTH
from tests.fixtures.sandbox_dirs import open_tmp  # noqa: F401
from tests.fixtures.sandbox_stack import AGENT_PYTHON, SandboxStack, sandbox_stack  # noqa: F401

S = sandbox_pb2
runner = CliRunner()
app = typer.Typer()
app.command("run")(run_cmds.run)
app.command("logs")(run_cmds.logs)
app.command("cancel")(run_cmds.cancel)
app.command("report")(report)
# The same commands in a child process, so a test can SIGKILL `mleb run`.
CHILD_CLI = "import typer\nfrom mleb.lab import run_cmds\ntyper.run(run_cmds.run)\n"
REPO = Path(__file__).resolve().parents[3]

# Seed 0 submits the answers (gold), any other seed their opposite (no medal). Outputs go to
# MLE-bench's folders in Docker and to the *_DIR variables on the local backend.
PERFECT_OR_WRONG = f"""
import os, sys, time
seed = int(os.environ["MLEB_SEED"])
folder = lambda name: os.environ.get(name.upper() + "_DIR", "/home/" + name)
rows = ["PassengerId,Transported"]
rows += [f"{{i}},{{t if seed == 0 else not t}}" for i, t in zip({IDS!r}, {TRUTH!r})]
open(folder("submission") + "/submission.csv", "w").write("\\n".join(rows) + "\\n")
open(folder("logs") + "/seed.txt", "w").write(str(seed))
open(folder("code") + "/agent.py", "w").write("print('hi')")
print(f"agent seed={{seed}}", flush=True)
release = os.environ.get("RELEASE_FILE", "")
if seed > 0 and release:
    while not os.path.exists(release):
        time.sleep(0.1)
print("agent done", flush=True)
"""


@dataclasses.dataclass
class Servers:
    env: dict[str, str]
    stack: SandboxStack
    sandbox_addr: str
    token: str

    def client(self) -> AsyncClient:
        return AsyncClient(sandbox=self.sandbox_addr, token=self.token)

    async def group_sandboxes(self, group: Path) -> list[sandbox_pb2.Sandbox]:
        async with self.client() as client:
            reply = await client.list_sandboxes(
                sandbox_pb.ListSandboxesRequest(labels={RUN_GROUP_LABEL: group.name})
            )
        return list(reply.sandboxes)


async def start_servers(stack: SandboxStack, lab_token: str, **overrides) -> Servers:
    server, _stub = await stack.start(**overrides)
    sandbox_addr = f"127.0.0.1:{server.port}"
    env = {
        "MLEB_REGISTRY_ADDR": stack.settings.registry_addr,
        "MLEB_GRADER_ADDR": stack.settings.grader_addr,
        "MLEB_SANDBOX_ADDR": sandbox_addr,
        "MLEB_TOKEN": lab_token,
        "COLUMNS": "200",
    }
    return Servers(env, stack, sandbox_addr, lab_token)


@pytest.fixture
async def local(sandbox_stack, lab_token) -> Servers:  # noqa: F811
    return await start_servers(sandbox_stack, lab_token)


@pytest.fixture
async def on_docker(engine, sandbox_stack, lab_token):  # noqa: F811
    servers = await start_servers(sandbox_stack, lab_token, backend="docker")
    yield servers
    label = f"{INSTANCE_LABEL}={sandbox_stack.sandbox_settings.instance_id}"
    for container in engine.containers.list(all=True, filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True)


@pytest.fixture
async def on_slurm(monkeypatch, engine, slurm_cluster, sandbox_stack, lab_token):  # noqa: F811
    """The sandbox service on the Slurm backend of dev_slurm.sh's cluster."""
    for name, value in slurm_env(slurm_cluster, sandbox_stack).items():
        monkeypatch.setenv(name, value)
    yield await start_servers(sandbox_stack, lab_token, backend="slurm")


@pytest.fixture(
    params=[
        "local",
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("slurm", marks=pytest.mark.docker),
    ]
)
def backend(request) -> tuple[str, Servers]:
    fixture = {"local": "local", "docker": "on_docker", "slurm": "on_slurm"}[request.param]
    return request.param, request.getfixturevalue(fixture)


async def invoke(servers: Servers, *args: str, code: int = 0) -> str:
    result = await asyncio.to_thread(runner.invoke, app, list(args), env=servers.env)
    assert result.exit_code == code, result.output
    return result.output


def agent_args(backend: str) -> list[str]:
    image, python = (
        ("local", AGENT_PYTHON) if backend == "local" else ("mleb-test-python", "python3")
    )
    return ["--agent", image, "--command", f"{python} -c {shlex.quote(PERFECT_OR_WRONG)}"]


def only_group(runs_dir: Path) -> Path:
    (group,) = runs_dir.iterdir()
    return group


async def test_a_group_is_run_graded_and_reported(backend, tmp_path) -> None:
    backend, servers = backend
    runs_dir = tmp_path / "runs"
    await invoke(
        servers, "run", *agent_args(backend), "--competitions", "lite", "--seeds", "2",
        "--concurrency", "2", "--time-limit", "2m", "--runs-dir", str(runs_dir),
        "--poll-interval", "0.2",
    )  # fmt: skip
    group = load_run_group(only_group(runs_dir))
    runs = sorted(group.runs.values(), key=lambda r: r.seed)
    assert [(r.competition_id, r.seed, r.state) for r in runs] == [
        (COMPETITION, 0, RunState.SUCCEEDED),
        (COMPETITION, 1, RunState.SUCCEEDED),
    ]
    for record in runs:
        run_dir = group.path / record.run_id
        # MLEB_SEED reached the agent, and its three folders came back.
        assert (run_dir / "logs" / "seed.txt").read_text() == str(record.seed)
        assert (run_dir / "code" / "agent.py").is_file()
        assert len(record.attempts) == 1 and record.attempts[0].sandbox["env"]["MLEB_SEED"]
        assert record.image_digest.startswith("sha256:") == (backend != "local")
        assert record.budget.time_limit_s == 120
    assert [e["submission_path"] for e in group.entries] == [
        f"{r.run_id}/submission/submission.csv" for r in runs
    ]
    assert [e["gold_medal"] for e in group.entries] == [True, False]
    assert group.metadata.runs == {r.run_id: True for r in runs}
    assert group.metadata.competition_ids == (COMPETITION,)
    output = await invoke(servers, "report", str(group.path), "--format", "json")
    low = next(s for s in json.loads(output)["splits"] if s["split"] == "low")
    assert low["metrics"]["any_medal_percentage"]["mean"] == pytest.approx(50)
    assert low["metrics"]["any_medal_percentage"]["standard_error"] == pytest.approx(50)
    assert low["metrics"]["gold_medal_percentage"]["mean"] == pytest.approx(50)
    assert low["metrics"]["valid_submissions_percentage"]["mean"] == pytest.approx(100)


async def test_resuming_a_finished_group_is_a_no_op(local, tmp_path) -> None:
    """Once every run settled and was graded, a resume grades nothing again (issue 16)."""
    runs_dir = tmp_path / "runs"
    await invoke(
        local, "run", *agent_args("local"), "--competitions", "lite", "--time-limit", "2m",
        "--runs-dir", str(runs_dir), "--poll-interval", "0.2",
    )  # fmt: skip
    group = only_group(runs_dir)
    (report,) = group.glob("*_grading_report.json")
    before = await local.group_sandboxes(group)
    await asyncio.sleep(1.1)  # a second report would get a later name
    output = await invoke(local, "run", "--resume", str(group), "--poll-interval", "0.2")
    assert "had already finished" in output and report.name in output, output
    assert list(group.glob("*_grading_report.json")) == [report]
    assert len(await local.group_sandboxes(group)) == len(before)


@pytest.mark.docker
async def test_infrastructure_failures_are_retried_and_agent_failures_are_not(
    on_docker, tmp_path
) -> None:
    runs_dir = tmp_path / "runs"
    common = ["--competitions", "low", "--time-limit", "1m", "--runs-dir", str(runs_dir),
              "--max-retries", "2", "--poll-interval", "0.2"]  # fmt: skip
    await invoke(on_docker, "run", "--agent", "mleb-test-missing-image:v0", *common)
    await invoke(
        on_docker, "run", "--agent", "mleb-test-busybox", "--command", "sh -c 'exit 3'", *common
    )
    groups = {load_run_group(g).metadata.agent_image: load_run_group(g) for g in runs_dir.iterdir()}
    (missing,) = groups["mleb-test-missing-image:v0"].runs.values()
    assert [a.failure_reason for a in missing.attempts] == ["image_not_found"] * 3
    assert missing.failure_type.value == "infrastructure" and missing.infrastructure_retries == 2
    (exited,) = groups["mleb-test-busybox"].runs.values()
    assert len(exited.attempts) == 1 and exited.failure_reason == "nonzero_exit"
    assert exited.failure_type.value == "agent"
    for group in groups.values():
        (entry,) = group.entries
        assert entry["submission_exists"] is False and entry["valid_submission"] is False
        assert entry["median_threshold"] is not None
    output = await invoke(
        on_docker, "report", *[str(g.path) for g in groups.values()], "--format", "json"
    )
    failures = json.loads(output)["failures"]
    assert failures["infrastructure_failures"] == 1 and failures["agent_failures"] == 1
    assert failures["infrastructure_retries"] == 2


async def wait_until(check, child: asyncio.subprocess.Process | None = None, timeout: float = 60):
    """Polls `check` until it returns something true; fails early if `child` exits first."""
    async with asyncio.timeout(timeout):
        while not (found := check()):
            if child is not None and child.returncode is not None:
                output = await child.stdout.read()
                pytest.fail(f"mleb run exited with {child.returncode}: {output.decode()}")
            await asyncio.sleep(0.1)
    return found


def records_of(group: Path) -> dict[int, object]:
    found = {}
    for run_file in group.glob("*/run.json"):
        with contextlib.suppress(Exception):
            record = read_run(run_file.parent)
            found[record.seed] = record
    return found


async def start_child(servers: Servers, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD_CLI, *args,
        cwd=REPO, env={**os.environ, **servers.env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def test_a_killed_cli_resumes_without_duplicating_sandboxes(local, open_tmp) -> None:  # noqa: F811
    release = open_tmp / "release"
    runs_dir = open_tmp / "runs"
    args = [*agent_args("local"), "--competitions", "low", "--seeds", "3", "--concurrency", "3",
            "--env", f"RELEASE_FILE={release}", "--time-limit", "2m", "--runs-dir", str(runs_dir),
            "--run-group", "resumable", "--poll-interval", "0.2"]  # fmt: skip
    group = runs_dir / "resumable"
    child = await start_child(local, *args)

    def seed0_done_others_running():
        records = records_of(group)
        return (
            len(records) == 3
            and records[0].state is RunState.SUCCEEDED
            and all(records[s].state is RunState.RUNNING for s in (1, 2))
        )

    await wait_until(seed0_done_others_running, child)
    child.send_signal(signal.SIGKILL)
    await child.wait()
    before = records_of(group)
    # As if the CLI had died before recording seed 2's sandbox: the idempotency key finds it.
    forgotten = before[2]
    (group / forgotten.run_id / "run.json").write_text(
        json.dumps({**forgotten.to_dict(), "attempts": [], "state": "pending"})
    )
    release.write_text("go")
    again = await start_child(local, *args)
    output, _ = await asyncio.wait_for(again.communicate(), 60)
    assert again.returncode == 0, output.decode()
    after = records_of(group)
    assert after[0] == before[0]  # finished earlier: untouched
    for seed in (1, 2):
        assert [a.sandbox_id for a in after[seed].attempts] == [
            a.sandbox_id for a in before[seed].attempts
        ]
        assert after[seed].state is RunState.SUCCEEDED
    sandboxes = await local.group_sandboxes(group)
    assert len(sandboxes) == 3 and {s.state for s in sandboxes} == {S.SANDBOX_STATE_SUCCEEDED}
    loaded = load_run_group(group)
    assert [(e["competition_id"], e["submission_exists"]) for e in loaded.entries] == [
        (COMPETITION, True)
    ] * 3
    assert [e["gold_medal"] for e in loaded.entries] == [True, False, False]
    # The same group name with other settings is refused, naming what differs.
    output = await invoke(local, "run", *args, "--seeds", "2", code=2)
    assert "--seeds" in output and "pick another --run-group" in " ".join(output.split())


async def test_cancel_stops_a_whole_group(local, open_tmp) -> None:  # noqa: F811
    runs_dir = open_tmp / "runs"
    # One at a time: seed 0 ends, seed 1 waits for a file that never comes, seed 2 is queued.
    child = await start_child(
        local, *agent_args("local"), "--competitions", "low", "--seeds", "3",
        "--concurrency", "1", "--env", f"RELEASE_FILE={open_tmp / 'never'}",
        "--time-limit", "2m", "--runs-dir", str(runs_dir), "--poll-interval", "0.2",
    )  # fmt: skip
    group = await wait_until(lambda: runs_dir.exists() and next(runs_dir.iterdir(), None), child)
    await wait_until(
        lambda: (r := records_of(group).get(1)) is not None and r.state is RunState.RUNNING, child
    )
    output = await invoke(local, "cancel", str(group))
    assert "stopped 1 sandbox(es)" in output
    finished, _ = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, finished.decode()
    records = records_of(group)
    assert [records[s].state for s in range(3)] == [
        RunState.SUCCEEDED,
        RunState.CANCELLED,
        RunState.CANCELLED,
    ]
    assert records[2].attempts == ()
    sandboxes = await local.group_sandboxes(group)
    assert sorted(s.state for s in sandboxes) == [
        S.SANDBOX_STATE_SUCCEEDED,
        S.SANDBOX_STATE_CANCELLED,
    ]
    # Every run is graded: the cancelled one kept what it had submitted, the queued one had none.
    entries = load_run_group(group).entries
    assert [e["submission_exists"] for e in entries] == [True, True, False]


async def test_logs_follow_streams_one_run_to_the_end(local, open_tmp) -> None:  # noqa: F811
    runs_dir = open_tmp / "runs"
    release = open_tmp / "release"
    child = await start_child(
        local, *agent_args("local"), "--competitions", "low", "--seeds", "2",
        "--env", f"RELEASE_FILE={release}", "--concurrency", "2", "--time-limit", "2m",
        "--runs-dir", str(runs_dir), "--poll-interval", "0.2",
    )  # fmt: skip
    group = await wait_until(lambda: runs_dir.exists() and next(runs_dir.iterdir(), None), child)
    waiting = await wait_until(
        lambda: next((r for r in records_of(group).values() if r.seed == 1 and r.attempts), None)
    )
    follower = asyncio.create_task(invoke(local, "logs", str(group / waiting.run_id), "--follow"))
    await asyncio.sleep(1.0)
    assert not follower.done()  # still waiting for the agent
    release.write_text("go")
    output = await asyncio.wait_for(follower, 60)
    lines = output.splitlines()
    assert lines.index("agent seed=1") < lines.index("agent done")
    assert lines[0].startswith("[mleb] ")
    finished, _ = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, finished.decode()


@pytest.mark.parametrize(
    ("competitions", "message"),
    [
        ("high", "epsilon-nodata (no prepared data)"),
        ("ids.txt", "no-such-competition (unknown to the registry)"),
        ("nonsense", "neither a split"),
        ("builtin", "no competitions in split 'builtin'"),  # a split, empty here
    ],
)
async def test_what_cannot_run_is_refused_before_any_sandbox(
    local, tmp_path, competitions, message
) -> None:
    (tmp_path / "ids.txt").write_text(f"{COMPETITION}\nno-such-competition\n")
    spec = str(tmp_path / competitions) if competitions.endswith(".txt") else competitions
    runs_dir = tmp_path / "runs"
    output = await invoke(
        local, "run", *agent_args("local"), "--competitions", spec, "--runs-dir", str(runs_dir),
        code=2,
    )  # fmt: skip
    assert message in " ".join(output.split())
    assert not runs_dir.exists()
