"""`mleb demo`: see services/demo.py."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.text import Text

from services.cli.grade_cmds import print_report
from services.demo import run_demo

console = Console()


def demo(
    local: bool = typer.Option(False, help="Use the local-process backend even with Docker."),
) -> None:
    """Starts every service, runs the bundled agent on a built-in competition, grades it."""

    def say(message: str) -> None:
        console.print(f"[bold cyan]mleb demo[/bold cyan] {message}", highlight=False)

    def show_log(line: str) -> None:
        console.print(Text.assemble(("  agent | ", "dim"), line), highlight=False)

    try:
        report = asyncio.run(run_demo(say, show_log, force_local=local))
    except RuntimeError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    print_report(report)
    medal = next(
        (m for m in ("gold", "silver", "bronze") if getattr(report, f"{m}_medal")), "no medal"
    )
    say(f"Score {report.score} on {report.competition_id}: {medal}.")
