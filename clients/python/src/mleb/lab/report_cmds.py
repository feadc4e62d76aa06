"""`mleb report RUN_GROUP_DIR...`: the medal table of one or more run groups."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from google.protobuf import json_format
from rich.console import Console

from mleb.errors import MlebError
from mleb.lab import environment
from mleb.lab.aggregate import build_report
from mleb.lab.evidence_cmds import deployment_keys
from mleb.lab.leaderboard import write_bundle
from mleb.lab.records import RecordError, load_run_group
from mleb.lab.report_render import RENDERERS
from mleb.splits import canonical_split

# The splits a report covers, in this order ("low" is also called lite, "all" split75).
REPORT_SPLITS = ("low", "medium", "high", "all")
# Registry splits reported too when the groups ran any of their competitions: the demo's own.
EXTRA_SPLITS = ("builtin",)
REGISTRY_TIMEOUT_S = 15.0
console = Console(stderr=True)


class ReportFormat(StrEnum):
    md = "md"
    json = "json"
    html = "html"


class SplitsError(Exception):
    """The split lists could not be had; the message says why."""


def splits_from_dir(folder: Path) -> dict[str, list[str]]:
    """MLE-bench's experiments/splits/*.txt: one competition id a line."""
    if not folder.is_dir():
        raise SplitsError(f"--splits-dir {folder} is not a folder")
    found = {}
    for path in sorted(folder.glob("*.txt")):
        name = canonical_split(path.stem)
        if name in REPORT_SPLITS:
            lines = path.read_text(encoding="utf-8").splitlines()
            found[name] = [s.strip() for s in lines if s.strip() and not s.startswith("#")]
    if not found:
        raise SplitsError(
            f"--splits-dir {folder} holds none of low.txt, medium.txt, high.txt, split75.txt"
        )
    return {name: found[name] for name in REPORT_SPLITS if name in found}


def splits_from_registry(address: str, token: str, ran: set[str]) -> dict[str, list[str]]:
    """The report splits the registry has, and the extra splits the groups ran (`ran`)."""
    try:
        with environment.client(registry=address, token=token) as client:
            response = client.list_splits(timeout=REGISTRY_TIMEOUT_S)
    except MlebError as exc:
        raise SplitsError(f"registry {address}: {exc}") from exc
    found = {s.name: list(s.competition_ids) for s in response.splits}
    wanted = [*REPORT_SPLITS, *(n for n in EXTRA_SPLITS if ran.intersection(found.get(n, ())))]
    if not any(name in found for name in wanted):
        raise SplitsError(
            f"registry {address} has none of the splits {', '.join(REPORT_SPLITS)}, and the "
            f"run groups ran no competition of {', '.join(EXTRA_SPLITS)}"
        )
    return {name: found[name] for name in wanted if name in found}


def known_issues_from_registry(
    address: str, token: str, ids: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """The registry's known upstream issues of each competition in `ids` that has some."""
    found: dict[str, list[dict[str, Any]]] = {}
    with environment.client(registry=address or None, token=token) as client:
        for competition_id in sorted(ids):
            try:
                issues = client.get_competition(competition_id, timeout=REGISTRY_TIMEOUT_S)
            except MlebError as exc:
                if exc.code == "NOT_FOUND":  # a group's competition the registry lacks
                    continue
                raise
            listed = [
                json_format.MessageToDict(i, preserving_proto_field_name=True)
                for i in issues.competition.known_issues
            ]
            if listed:
                found[competition_id] = listed
    return found


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
