"""`mleb report RUN_GROUP_DIR...`: the medal table of one or more run groups."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from mleb.errors import MlebError
from mleb.lab import environment
from mleb.lab.aggregate import build_report
from mleb.lab.environment import deployment_keys
from mleb.lab.group_folder import load_run_group
from mleb.lab.leaderboard import write_bundle
from mleb.lab.records import RecordError
from mleb.lab.report_render import RENDERERS
from mleb.lab.split_lists import (
    SplitsError,
    known_issues_from_registry,
    splits_from_dir,
    splits_from_registry,
)

console = Console(stderr=True)


class ReportFormat(StrEnum):
    md = "md"
    json = "json"
    html = "html"


def _leaderboard(
    run_groups: list[Path],
    out: Path,
    splits: dict[str, list[str]],
    registry: str,
    token: str,
    experiment_id: str,
) -> None:
    if len(run_groups) != 1:
        raise SplitsError("--leaderboard takes exactly one run group")
    if out.exists():
        raise SplitsError(f"--leaderboard {out} exists already; name a new folder")
    group = load_run_group(run_groups[0])
    ran = {str(e.get("competition_id")) for e in group.entries}
    summary = write_bundle(
        run_groups[0],
        out,
        splits=splits,
        known_issues=known_issues_from_registry(registry, token, ran),
        public_keys=deployment_keys(),
        experiment_id=experiment_id
        or (group.metadata.agent_image if group.metadata else "")
        or group.name,
        mleb_version=environment.version(),
    )
    flagged = summary["medals_on_known_issue_competitions"]
    console.print(f"wrote leaderboard bundle {out}", highlight=False)
    if flagged:
        console.print(f"medals on competitions with known issues: {', '.join(flagged)}")


def report(
    run_groups: list[Path] = typer.Argument(
        ..., help="Run-group folders; seeds from several groups are merged."
    ),
    output_format: ReportFormat | None = typer.Option(
        None,
        "--format",
        help="md, json or html. Default: md on stdout, or all three with --output-dir.",
    ),
    output_dir: Path | None = typer.Option(
        None, help="Write report.<format> files here instead of printing."
    ),
    registry: str = typer.Option(
        "", envvar="MLEB_REGISTRY_ADDR", help="Registry to read the splits from (ListSplits)."
    ),
    splits_dir: Path | None = typer.Option(
        None,
        help="Offline: a folder of MLE-bench's experiments/splits/*.txt (wins over --registry).",
    ),
    token: str = typer.Option("", envvar="MLEB_TOKEN", help="Bearer token for the registry."),
    leaderboard: Path | None = typer.Option(
        None,
        "--leaderboard",
        help="Write a leaderboard bundle for ONE run group into this new folder (verifiable "
        "with `mleb verify`).",
    ),
    experiment_id: str = typer.Option(
        "", help="The bundle's experiment id (run_group_experiments.csv); default: the agent."
    ),
) -> None:
    """Medal table per split, per-competition scores, pass@k, failures and provenance.

    The split numbers are MLE-bench's unified aggregation (mean +- SEM over seeds).
    """
    try:
        groups = [load_run_group(path) for path in run_groups]
        if splits_dir is not None:
            splits = splits_from_dir(splits_dir)
        elif registry:
            ran = {str(e.get("competition_id")) for group in groups for e in group.entries}
            splits = splits_from_registry(registry, token, ran)
        else:
            raise SplitsError(
                "split membership is needed: pass --registry ADDR (or set MLEB_REGISTRY_ADDR) "
                "or --splits-dir DIR"
            )
        if leaderboard is not None:
            _leaderboard(run_groups, leaderboard, splits, registry, token, experiment_id)
            return
    except (SplitsError, RecordError, MlebError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    ran = {str(e.get("competition_id")) for group in groups for e in group.entries}
    try:
        # Offline (--splits-dir alone) there is no registry to ask.
        flagged = known_issues_from_registry(registry, token, ran) if registry else {}
    except MlebError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    result = build_report(
        groups,
        splits,
        mleb_version=environment.version(),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        known_issues={c: [i["url"] for i in issues] for c, issues in flagged.items()},
    )
    if output_dir is None:
        typer.echo(RENDERERS[output_format or ReportFormat.md](result), nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for chosen in [output_format] if output_format else list(ReportFormat):
        path = output_dir / f"report.{chosen.value}"
        path.write_text(RENDERERS[chosen](result), encoding="utf-8")
        console.print(f"wrote {path}", highlight=False)
