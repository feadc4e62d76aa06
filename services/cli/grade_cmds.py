"""`mleb grade-sample` and `mleb grade`, mirroring MLE-bench's commands of the same names."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import typer
from mleb.client import AsyncClient
from mleb.errors import MlebError as ClientError
from mleb.lab.records import grading_report_name
from mleb.report_proto import report_from_proto, report_without_score
from mleb.reports import NO_SUBMISSION, CompetitionReport, aggregate_reports
from rich.console import Console
from rich.table import Table

from services.common.channels import bearer_metadata, service_channel, service_token
from services.common.errors import MlebError
from services.common.settings import Settings
from services.grader.bundles import BundleProvider, LocalBundleProvider, ParsedAnswersCache
from services.grader.core import GraderCore
from services.grader.registry_bundles import RegistryBundleProvider

console = Console(stderr=True)


def submission_exists(path: Path) -> bool:
    # MLE-bench only grades an existing file with a .csv suffix.
    return path.is_file() and path.suffix.lower() == ".csv"


def no_submission_error(path: Path) -> str:
    """Why a submission that `submission_exists` refuses was not graded: missing is one
    thing, a file that is there but is no CSV another."""
    if not path.exists():
        return NO_SUBMISSION
    if path.is_dir():
        return "The submission path is a directory, not a CSV file."
    if not path.is_file():
        return "The submission path is not a regular file."
    return (
        f"The submission file exists but is not a CSV file (its name ends in "
        f"{path.suffix or 'no suffix'!r}; MLE-bench grades only files named *.csv)."
    )


def _grader_client(address: str, token: str, settings: Settings) -> AsyncClient:
    tls_ca = settings.client_tls_ca.read_bytes() if settings.client_tls_ca else None
    return AsyncClient(grader=address, token=token, tls_ca=tls_ca, timeout=600)


async def grade_one(
    competition_id: str,
    submission: Path,
    shown_path: str,
    *,
    answers: Path | None,
    leaderboard: Path | None,
    grader: str,
    registry: str,
    token: str,
    settings: Settings,
) -> CompetitionReport:
    """Offline with explicit answers; else through a grader; else in-process, reading the
    answers from the registry (which needs service credentials)."""
    exists = submission_exists(submission)
    if answers is None and grader:
        async with _grader_client(grader, token, settings) as client:
            if exists:
                reply = await client.grade_submission(
                    competition_id, submission, submission_path=shown_path
                )
                return report_from_proto(reply.report)
            # GradeSubmission cannot express a missing file: rank "no score" instead.
            ranked = await client.rank_score(competition_id, None)
        return report_without_score(
            competition_id,
            ranked.ranking,
            submission_path=shown_path,
            submission_exists=False,
            error=no_submission_error(submission),
        )
    provider: BundleProvider
    channel = None
    if answers is not None:
        provider = LocalBundleProvider(competition_id, answers, leaderboard)
    else:
        channel = service_channel(registry or settings.registry_addr, settings)
        credentials = token or service_token(settings, "mleb-cli")
        provider = RegistryBundleProvider(
            channel, bearer_metadata(credentials), ParsedAnswersCache(settings.answers_cache_bytes)
        )
    try:
        return await GraderCore(provider).grade(
            competition_id,
            submission if exists else None,
            shown_path,
            no_submission=no_submission_error(submission),
        )
    finally:
        if channel is not None:
            await channel.close()


def print_report(report: CompetitionReport) -> None:
    out = Console()
    rows = [(k, "" if v is None else str(v)) for k, v in report.to_dict().items()]
    if not out.is_terminal:  # logs and pipes: whole lines, never folded mid-path
        for key, value in rows:
            out.print(f"{key}: {value}", markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"{report.competition_id}", show_header=False)
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


_ANSWERS = typer.Option(None, help="Private answers file: grade offline, with no server.")
_LEADERBOARD = typer.Option(None, help="Leaderboard CSV (with a score column), for medals.")
_GRADER = typer.Option("", envvar="MLEB_GRADER_ADDR", help="Grade through this grader.")
_REGISTRY = typer.Option("", envvar="MLEB_REGISTRY_ADDR", help="Registry for answers.")
_TOKEN = typer.Option("", envvar="MLEB_TOKEN", help="Bearer token (lab role).")


def grade_sample(
    submission: Path = typer.Argument(..., help="The submission CSV."),
    competition_id: str = typer.Argument(..., help="Competition id."),
    answers: Path | None = _ANSWERS,
    leaderboard: Path | None = _LEADERBOARD,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    grader: str = _GRADER,
    registry: str = _REGISTRY,
    token: str = _TOKEN,
) -> None:
    """Grades one submission and prints its competition report (exit 0 whenever grading ran)."""
    for path in filter(None, (answers, leaderboard)):
        if not path.is_file():
            console.print(f"[red]no such file: {path}[/red]")
            raise typer.Exit(2)
    report = _run(
        grade_one(
            competition_id,
            submission,
            str(submission),
            answers=answers,
            leaderboard=leaderboard,
            grader=grader,
            registry=registry,
            token=token,
            settings=Settings.from_env(),
        )
    )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report)


def grade(
    submission: Path = typer.Option(..., help="JSONL: competition_id, submission_path per line."),
    output_dir: Path = typer.Option(..., help="Where the grading report is written."),
    grader: str = _GRADER,
    registry: str = _REGISTRY,
    token: str = _TOKEN,
) -> None:
    """Grades many submissions and writes MLE-bench's aggregated grading report."""
    try:
        lines = submission.read_text().splitlines()
    except OSError as exc:
        console.print(f"[red]cannot read {submission}: {exc}[/red]")
        raise typer.Exit(2) from exc
    entries = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        try:
            entry = json.loads(line)
            entries.append((entry["competition_id"], entry["submission_path"], entry))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            console.print(
                f"[red]{submission}:{number}: needs competition_id and submission_path[/red]"
            )
            raise typer.Exit(2) from exc
    settings = Settings.from_env()

    async def grade_all() -> list[CompetitionReport]:
        return [
            await grade_one(
                competition_id,
                Path(path),
                path,
                answers=Path(entry["answers_path"]) if entry.get("answers_path") else None,
                leaderboard=Path(entry["leaderboard_path"])
                if entry.get("leaderboard_path")
                else None,
                grader=grader,
                registry=registry,
                token=token,
                settings=settings,
            )
            for competition_id, path, entry in entries
        ]

    aggregated = aggregate_reports(_run(grade_all()))
    output_dir.mkdir(parents=True, exist_ok=True)
    # `<YYYY-MM-DDTHH-MM-SS>-UTC_grading_report.json`, as `mleb run` names its reports and as
    # MLE-bench's run groups are named; MLE-bench's readers glob `*grading_report*.json`.
    out = output_dir / grading_report_name()
    out.write_text(json.dumps(aggregated, indent=2))
    summary = {k: v for k, v in aggregated.items() if k != "competition_reports"}
    console.print_json(json.dumps(summary))
    for report in aggregated["competition_reports"]:
        if report.get("leaderboard_note"):
            console.print(
                f"{report['competition_id']}: {report['leaderboard_note']}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    console.print(f"Saved the grading report to {out}", highlight=False, soft_wrap=True)


def _run(coroutine):
    try:
        return asyncio.run(coroutine)
    except MlebError as exc:
        console.print(f"[red]{exc.code}: {exc.message}[/red]")
        raise typer.Exit(2) from exc
    except (ClientError, grpc.aio.AioRpcError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
