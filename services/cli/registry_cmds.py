"""`mleb registry ...` (imports, straight into the database and data dir) and
`mleb competitions ...` (reads, through a running registry over gRPC)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from mleb.common.v1 import common_pb2
from mleb.registry.v1 import registry_pb2, registry_service_pb2, registry_service_pb2_grpc
from rich.console import Console
from rich.table import Table

from services.cli.connect import bearer, channel_to
from services.common.errors import MlebError
from services.common.settings import DEFAULT_PORTS, Settings
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller, ImportReport, ImportStatus
from services.registry.importers.mlebench import import_mlebench
from services.registry.importers.own_format import import_competition

registry_app = typer.Typer(
    help="Operator only: import competitions into the registry's database "
    "(MLEB_DATABASE_URL) and data dir.",
    no_args_is_help=True,
)
competitions_app = typer.Typer(help="Browse a running registry.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)

_STATUS_STYLE = {
    ImportStatus.PREPARED: "green",
    ImportStatus.METADATA_ONLY: "yellow",
    ImportStatus.FAILED: "red",
}


def run_import(do_import: Callable[[CompetitionInstaller], ImportReport]) -> None:
    """Runs an import against the configured database and data dir, prints its report, and
    exits 2 when it could not run at all, 1 when any competition failed."""
    settings = Settings.from_env()
    try:
        core = RegistryCore.from_settings(settings)
        try:
            report = do_import(CompetitionInstaller(core.sessions, core.storage))
        finally:
            core.close()
    except MlebError as exc:
        errors.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    _print_report(report)
    if report.failed:
        raise typer.Exit(1)


def _print_report(report: ImportReport) -> None:
    for warning in report.warnings:
        errors.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    if not console.is_terminal:
        # CI logs and pipes: a table would fold notes (and the paths in them) at 80 columns.
        for result in report.results:
            console.print(
                f"{result.competition_id}: {result.status.value}", highlight=False, soft_wrap=True
            )
            for line in [result.error] if result.error else []:
                console.print(f"  error: {line}", markup=False, highlight=False, soft_wrap=True)
            for note in result.notes:
                console.print(f"  note: {note}", markup=False, highlight=False, soft_wrap=True)
        counts = {s: sum(r.status is s for r in report.results) for s in ImportStatus}
        console.print(", ".join(f"{n} {s.value}" for s, n in counts.items()), highlight=False)
        return
    table = Table("competition", "status", "notes")
    for result in report.results:
        style = _STATUS_STYLE[result.status]
        table.add_row(
            result.competition_id,
            f"[{style}]{result.status.value}[/{style}]",
            "\n".join([result.error, *result.notes] if result.error else result.notes),
        )
    console.print(table)
    counts = {s: sum(r.status is s for r in report.results) for s in ImportStatus}
    console.print(", ".join(f"{n} {s.value}" for s, n in counts.items()))


@registry_app.command("import-mlebench")
def import_mlebench_command(
    repo: Path = typer.Option(..., help="An MLE-bench checkout (with `git lfs pull` done)."),
    data_dir: Path | None = typer.Option(
        None, help="MLE-bench's data dir, holding <id>/prepared/{public,private}."
    ),
    competitions: list[str] | None = typer.Option(
        None, "--competitions", help="Import only these ids (repeat the option)."
    ),
    skip_checksums: bool = typer.Option(
        False, help="Do not verify prepared files against checksums.yaml (recorded)."
    ),
) -> None:
    """Imports MLE-bench's competitions; without prepared data they are metadata only."""
    run_import(
        lambda installer: import_mlebench(
            installer,
            repo,
            data_dir,
            competitions=competitions or (),
            skip_checksums=skip_checksums,
        )
    )


@registry_app.command("import")
def import_command(
    path: Path = typer.Argument(..., help="A competition folder in mleb's own format."),
) -> None:
    """Validates and imports a competition in mleb's own format (see docs/registry.md)."""
    run_import(lambda installer: ImportReport(results=[import_competition(installer, path)]))


_SHOWN_FILES = 100
_REGISTRY = typer.Option(
    f"127.0.0.1:{DEFAULT_PORTS['registry']}", envvar="MLEB_REGISTRY_ADDR", help="host:port"
)
_TOKEN = typer.Option("", envvar="MLEB_TOKEN", help="Bearer token.", show_default=False)
_COMPLEXITY = {
    "": registry_pb2.COMPLEXITY_UNSPECIFIED,
    "low": registry_pb2.COMPLEXITY_LOW,
    "medium": registry_pb2.COMPLEXITY_MEDIUM,
    "high": registry_pb2.COMPLEXITY_HIGH,
}


@competitions_app.command("list")
def list_command(
    split: str = typer.Option("", help="low (lite), medium, high, all, dev, ..."),
    category: str = typer.Option("", help="e.g. 'Image Classification'."),
    complexity: str = typer.Option("", help="low, medium or high."),
    registry: str = _REGISTRY,
    token: str = _TOKEN,
) -> None:
    """Lists competitions, following every page."""
    if complexity not in _COMPLEXITY:
        errors.print("[red]--complexity must be low, medium or high[/red]")
        raise typer.Exit(2)
    table = Table("id", "name", "category", "complexity", "metric", "data", "leaderboard")
    page_token, total = "", 0
    with channel_to(registry) as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        while True:
            request = registry_service_pb2.ListCompetitionsRequest(
                split=split,
                category=category,
                complexity=_COMPLEXITY[complexity],
                page_size=500,
                page_token=page_token,
            )
            response = stub.ListCompetitions(request, metadata=bearer(token))
            total = response.total_size
            for c in response.competitions:
                table.add_row(
                    c.id,
                    c.name,
                    c.category,
                    registry_pb2.Complexity.Name(c.complexity).removeprefix("COMPLEXITY_").lower(),
                    c.metric.name,
                    _data_label(c),
                    str(c.leaderboard_size)
                    if c.leaderboard_size
                    else (
                        "none (LFS pointer)"
                        if c.leaderboard_state == common_pb2.LEADERBOARD_STATE_LFS_POINTER
                        else "none"
                    ),
                )
            page_token = response.next_page_token
            if not page_token:
                break
    _print_table(table)
    console.print(f"{total} competitions")


def _print_table(table: Table) -> None:
    """A rich table on a terminal; elsewhere (CI, pipes) tab-separated whole values, which
    rich would otherwise fold or cut at 80 columns."""
    if console.is_terminal:
        console.print(table)
        return
    columns = table.columns
    console.print("\t".join(str(c.header) for c in columns), markup=False, highlight=False)
    for row in zip(*(c.cells for c in columns), strict=True):
        console.print(
            "\t".join(str(cell) for cell in row), markup=False, highlight=False, soft_wrap=True
        )


def _leaderboard_label(competition: registry_pb2.Competition) -> str:
    if competition.leaderboard_size:
        return f"{competition.leaderboard_size} teams"
    # A registry that predates leaderboard states sends no note.
    return competition.leaderboard_note or "none"


def _data_label(competition: registry_pb2.Competition) -> str:
    if competition.data_status == registry_pb2.DATA_STATUS_PREPARED:
        return "prepared"
    return "metadata only"


def _checksums_label(competition: registry_pb2.Competition) -> str:
    if competition.checksums_skipped:
        return "skipped at import (--skip-checksums)"
    prepared = competition.data_status == registry_pb2.DATA_STATUS_PREPARED
    return "verified" if prepared and competition.source == "mlebench" else "n/a"


@competitions_app.command("show")
def show_command(
    competition_id: str = typer.Argument(...),
    obfuscated: bool = typer.Option(False, help="Show the obfuscated description."),
    registry: str = _REGISTRY,
    token: str = _TOKEN,
) -> None:
    """Shows one competition: metadata, public files and description."""
    variant = (
        common_pb2.DESCRIPTION_VARIANT_OBFUSCATED
        if obfuscated
        else common_pb2.DESCRIPTION_VARIANT_PLAIN
    )
    with channel_to(registry) as channel:
        stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        c = stub.GetCompetition(
            registry_service_pb2.GetCompetitionRequest(
                competition_id=competition_id, description_variant=variant, omit_public_files=True
            ),
            metadata=bearer(token),
        ).competition
        # The first page only: a competition may hold hundreds of thousands of files.
        shown_files = stub.ListPublicFiles(
            registry_service_pb2.ListPublicFilesRequest(
                competition_id=competition_id, page_size=_SHOWN_FILES
            ),
            metadata=bearer(token),
        ).public_files
    facts = Table(show_header=False, title=f"{c.name} ({c.id})")
    for label, value in (
        ("source", c.source),
        ("category", c.category or "-"),
        ("complexity", registry_pb2.Complexity.Name(c.complexity).removeprefix("COMPLEXITY_")),
        ("splits", ", ".join(c.splits) or "-"),
        ("metric", c.metric.name + "".join(f" {k}={v}" for k, v in c.metric.params.items())),
        ("lower is better", str(c.lower_is_better)),
        ("awards medals", str(c.awards_medals)),
        ("leaderboard", _leaderboard_label(c)),
        ("data", _data_label(c) + (f": {c.data_status_reason}" if c.data_status_reason else "")),
        ("public data", f"{c.public_file_count} files, {c.public_data_size_bytes} bytes"),
        ("checksums", _checksums_label(c)),
        *(("import note", note) for note in c.import_notes),
    ):
        facts.add_row(label, value)
    if console.is_terminal:
        console.print(facts)
    else:  # whole lines for logs and pipes, never folded mid-path
        console.print(facts.title, markup=False, highlight=False, soft_wrap=True)
        for label, value in zip(*(col.cells for col in facts.columns), strict=True):
            console.print(f"{label}: {value}", markup=False, highlight=False, soft_wrap=True)
    if shown_files:
        more = c.public_file_count - len(shown_files)
        files = Table("path", "bytes", "sha256", caption=f"and {more} more" if more > 0 else None)
        for f in shown_files:
            files.add_row(f.path, str(f.size_bytes), f.sha256[:16])
        console.print(files)
    console.print(c.description, markup=False, highlight=False, soft_wrap=True)
