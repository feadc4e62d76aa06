"""`mleb run`, `mleb logs` and `mleb cancel`: run groups of an agent over competitions and seeds.

Option parsing and the live display live here; mleb/lab/orchestrator.py drives the runs.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mleb.client import NO_DEADLINE, AsyncClient
from mleb.errors import MlebError
from mleb.lab import environment
from mleb.lab.grade_and_cancel import cancel_group
from mleb.lab.group_folder import read_group
from mleb.lab.orchestrator import Orchestrator
from mleb.lab.records import (
    RUN_FILE,
    Budget,
    RecordError,
    RunState,
    group_dir_name,
    read_run,
)
from mleb.lab.run_plan import (
    DEFAULT_MAX_RETRIES,
    AgentLaunch,
    PlanError,
    RunPlan,
    parse_network,
    plan_differences,
    plan_of,
    resolve_competitions,
)
from mleb.lab.run_progress import RunProgress
from mleb.sandbox.v1 import sandbox_pb2

console = Console(stderr=True)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$", re.IGNORECASE)
_STATE_STYLE = {
    RunState.SUCCEEDED: "green",
    RunState.FAILED: "red",
    RunState.TIMED_OUT: "yellow",
    RunState.CANCELLED: "magenta",
    RunState.RUNNING: "cyan",
}
# Beyond this many runs the table shows only the unfinished ones.
_MAX_ROWS = 30


def parse_duration(value: str) -> float:
    """`24h`, `90m`, `1h30m`, `2d`, `45s` or plain seconds."""
    text = value.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise typer.BadParameter(f"{value!r}: use e.g. 24h, 90m, 1h30m or seconds") from None
        seconds = sum(float(n) * _UNITS_S[u] for n, u in parts)
    if seconds <= 0:
        raise typer.BadParameter(f"{value!r}: must be longer than zero")
    return seconds


def parse_size(value: str) -> int:
    """Bytes: `16g`, `512M`, `1.5GiB`, `64gb` (all powers of 1024) or a plain number."""
    found = _SIZE.match(value.strip())
    if not found:
        raise typer.BadParameter(f"{value!r}: use e.g. 16g, 512m or a number of bytes")
    number, unit = float(found.group(1)), found.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def parse_env(values: list[str], option: str, from_environment: bool = False) -> dict[str, str]:
    """K=V pairs; with `from_environment`, a bare K takes its value from this process's
    environment, which keeps secrets off the command line."""
    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            if not from_environment:
                raise typer.BadParameter(f"{option} {item!r}: expected KEY=VALUE")
            if key not in os.environ:
                raise typer.BadParameter(f"{option} {key}: not set in the environment")
            value = os.environ[key]
        parsed[key] = value
    return parsed


def _client(registry: str, grader: str, sandbox: str, token: str) -> AsyncClient:
    return environment.async_client(
        registry=registry or None, grader=grader or None, sandbox=sandbox or None, token=token
    )


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _run_async(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    try:
        return asyncio.run(work())
    except (PlanError, RecordError) as exc:
        raise _fail(str(exc)) from None
    except MlebError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        # Sandboxes keep running: a resume re-attaches to them, `mleb cancel` stops them.
        raise _fail("interrupted", 130) from None


# The live display.


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def progress_table(runs: list[RunProgress], title: str) -> Group:
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.state.value] = counts.get(run.state.value, 0) + 1
    shown = runs if len(runs) <= _MAX_ROWS else [r for r in runs if not r.state.finished]
    table = Table("run", "seed", "state", "try", "elapsed", "latest log line", title=title)
    for run in shown[:_MAX_ROWS]:
        style = _STATE_STYLE.get(run.state, "white")
        state = f"[{style}]{run.state.value}[/{style}]" + (f" ({run.note})" if run.note else "")
        table.add_row(
            run.competition_id,
            str(run.seed),
            state,
            str(run.attempt or ""),
            _elapsed(run.elapsed_s(now)) if run.started_at else "",
            Text(run.latest_line[-100:], overflow="ellipsis", no_wrap=True),
        )
    summary = " · ".join(f"{state} {count}" for state, count in sorted(counts.items()))
    return Group(table, Text(f"{len(runs)} runs: {summary}"))


async def _drive_with_display(orchestrator: Orchestrator, show_live: bool):
    if not show_live:
        return await orchestrator.run()
    title = f"run group {orchestrator.name}"
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        work = asyncio.create_task(orchestrator.run())
        while not work.done():
            live.update(progress_table(list(orchestrator.progress.values()), title))
            await asyncio.wait({work}, timeout=0.5)
        live.update(progress_table(list(orchestrator.progress.values()), title))
        return work.result()


# Commands.

_REGISTRY = typer.Option("", envvar="MLEB_REGISTRY_ADDR", help="Registry address (splits).")
_GRADER = typer.Option("", envvar="MLEB_GRADER_ADDR", help="Grader address (grading).")
_SANDBOX = typer.Option("", envvar="MLEB_SANDBOX_ADDR", help="Sandbox service address.")
_TOKEN = typer.Option("", envvar="MLEB_TOKEN", help="Bearer token (lab role).")


def run(
    agent: str = typer.Option("", "--agent", help="The agent image."),
    competitions: str = typer.Option(
        "", help="A split (low, lite, medium, high, all, builtin) or a file of competition ids."
    ),
    seeds: int = typer.Option(1, min=1, help="Runs per competition; the agent gets MLEB_SEED."),
    concurrency: int | None = typer.Option(
        None, min=1, help="Sandboxes at once (default 1); the rest queue."
    ),
    gpus_per_run: int = typer.Option(0, min=0, help="GPUs leased to each run; runs queue."),
    time_limit: str = typer.Option("24h", help="Per run: 24h, 90m, 1h30m or seconds."),
    cpus: float = typer.Option(0.0, min=0, help="CPUs per run; 0 for the service default."),
    memory: str = typer.Option("", help="Memory per run (16g, 512m); empty for the default."),
    env: list[str] = typer.Option([], "--env", help="KEY=VALUE for the agent; repeat."),
    secret_env: list[str] = typer.Option(
        [],
        "--secret-env",
        help="KEY=VALUE, or KEY to pass this shell's value; never stored or logged.",
    ),
    network: str = typer.Option("none", help="none, internet or allowlist:HOST[,HOST...]"),
    mlebench_compat: bool = typer.Option(
        False, "--mlebench-compat", help="Run an MLE-bench agent image unchanged."
    ),
    command: str = typer.Option("", help="Override the image's command (shell syntax)."),
    max_retries: int | None = typer.Option(
        None, min=0, help=f"Retries per run after infrastructure failures ({DEFAULT_MAX_RETRIES})."
    ),
    runs_dir: Path = typer.Option(Path("runs"), help="Where run-group folders are made."),
    run_group: str = typer.Option(
        "", help="The group folder's name; an existing group of that name is resumed."
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Resume this run-group folder with the settings it was made with."
    ),
    poll_interval: float = typer.Option(1.0, hidden=True),
    registry: str = _REGISTRY,
    grader: str = _GRADER,
    sandbox: str = _SANDBOX,
    token: str = _TOKEN,
) -> None:
    """Runs an agent image on every (competition, seed), grades each run, and writes an
    MLE-bench run-group folder. Run it again (or --resume DIR) to finish an interrupted group."""
    secrets = parse_env(secret_env, "--secret-env", from_environment=True)
    asked_budget = Budget(
        time_limit_s=parse_duration(time_limit),
        gpus=gpus_per_run,
        cpus=cpus,
        memory_bytes=parse_size(memory) if memory else 0,
        network=network.strip(),
    )

    async def main() -> None:
        parse_network(asked_budget.network)
        async with _client(registry, grader, sandbox, token) as client:
            group_dir, plan = await _group_and_plan(client)
            if resume is None and group_dir.exists():
                console.print(f"resuming {group_dir}", highlight=False)
            orchestrator = Orchestrator(
                client,
                group_dir,
                plan,
                mleb_version=environment.version(),
                poll_interval_s=poll_interval,
                on_event=lambda message: console.print(message, highlight=False, soft_wrap=True),
            )
            console.print(
                f"run group {group_dir} ({len(plan.pairs())} runs, concurrency "
                f"{plan.concurrency}); if interrupted: mleb run --resume {group_dir}",
                highlight=False,
                soft_wrap=True,
            )
            result = await _drive_with_display(orchestrator, console.is_terminal)
        if result.already_graded:
            console.print(
                f"{group_dir} had already finished: every run is settled and "
                f"{result.report_path} grades them all; nothing to do",
                highlight=False,
                soft_wrap=True,
            )
            return
        states = [r.state for r in result.records.values()]
        console.print(
            f"graded {len(states)} runs ({states.count(RunState.SUCCEEDED)} succeeded): "
            f"{result.report_path}",
            highlight=False,
            soft_wrap=True,
        )

    async def _group_and_plan(client: AsyncClient) -> tuple[Path, RunPlan]:
        if resume is not None:
            stored = plan_of(*read_group(resume))
            return resume, _with_secrets(stored, secrets, concurrency, max_retries)
        if not agent or not competitions:
            raise PlanError("--agent and --competitions are required (or --resume DIR)")
        plan = RunPlan(
            launch=AgentLaunch(
                image=agent,
                command=tuple(shlex.split(command)),
                env=parse_env(env, "--env"),
                secret_env=secrets,
                secret_env_names=tuple(sorted(secrets)),
                mlebench_compat=mlebench_compat,
            ),
            budget=asked_budget,
            competition_set=competitions,
            competition_ids=await resolve_competitions(client, competitions),
            seeds=seeds,
            concurrency=concurrency or 1,
            max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
        )
        group_dir = runs_dir / (run_group or group_dir_name(agent))
        if group_dir.exists():
            stored = plan_of(*read_group(group_dir))
            if differing := plan_differences(stored, plan):
                raise PlanError(
                    f"{group_dir} was started with different {', '.join(differing)}; "
                    "pick another --run-group or repeat the original options"
                )
        return group_dir, plan

    _run_async(main)


def _with_secrets(
    plan: RunPlan, secrets: dict[str, str], concurrency: int | None, max_retries: int | None
) -> RunPlan:
    """A resumed plan gets its secret values again (only their names were stored); the
    concurrency and retry count may change, since they decide nothing about a run."""
    names = set(plan.launch.secret_env_names)
    values = {name: secrets.get(name, os.environ.get(name)) for name in names}
    if missing := sorted(name for name, value in values.items() if value is None):
        raise PlanError(
            f"the group passes secret variables {', '.join(missing)}: give them again with "
            "--secret-env KEY=VALUE or set them in the environment"
        )
    launch = AgentLaunch(
        image=plan.launch.image,
        command=plan.launch.command,
        env=plan.launch.env,
        secret_env={name: str(value) for name, value in values.items()},
        secret_env_names=plan.launch.secret_env_names,
        mlebench_compat=plan.launch.mlebench_compat,
    )
    return RunPlan(
        launch=launch,
        budget=plan.budget,
        competition_set=plan.competition_set,
        competition_ids=plan.competition_ids,
        seeds=plan.seeds,
        concurrency=concurrency or plan.concurrency,
        max_retries=plan.max_retries if max_retries is None else max_retries,
    )


def logs(
    run_dir: Path = typer.Argument(..., help="A run's folder: <run group>/<competition>_<uuid>."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming until it ends."),
    sandbox: str = _SANDBOX,
    token: str = _TOKEN,
) -> None:
    """Prints one run's log, every attempt in order; --follow streams until the run ends."""
    if not (run_dir / RUN_FILE).is_file():
        raise _fail(f"{run_dir}: no {RUN_FILE}; pass a run's folder inside a run group")

    async def main() -> None:
        async with _client("", "", sandbox, token) as client:
            shown: set[str] = set()
            while True:
                record = read_run(run_dir)
                pending = [a for a in record.attempts if a.sandbox_id not in shown]
                for attempt in pending:
                    await _print_logs(client, attempt.sandbox_id, follow)
                    shown.add(attempt.sandbox_id)
                if not follow:
                    return
                record = read_run(run_dir)
                if record.state.finished and all(a.sandbox_id in shown for a in record.attempts):
                    return
                if not pending:
                    # Queued, or between an infrastructure failure and its retry.
                    await asyncio.sleep(1.0)

    _run_async(main)


async def _print_logs(client: AsyncClient, sandbox_id: str, follow: bool) -> None:
    async for batch in client.stream_logs(sandbox_id, follow=follow, timeout=NO_DEADLINE):
        for entry in batch.entries:
            prefix = "[mleb] " if entry.stream == sandbox_pb2.LOG_STREAM_SYSTEM else ""
            typer.echo(f"{prefix}{entry.text}")


def cancel(
    group_dir: Path = typer.Argument(..., help="The run-group folder."),
    sandbox: str = _SANDBOX,
    token: str = _TOKEN,
) -> None:
    """Stops every sandbox of a run group; its unfinished runs end CANCELLED."""

    async def main() -> None:
        async with _client("", "", sandbox, token) as client:
            result = await cancel_group(client, group_dir)
        console.print(
            f"stopped {len(result.stopped)} sandbox(es); {len(result.runs_cancelled)} run(s) "
            f"cancelled; resume with mleb run --resume {group_dir}",
            highlight=False,
            soft_wrap=True,
        )

    _run_async(main)
