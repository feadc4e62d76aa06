"""`mleb keys` and `mleb verify`: the deployment's public keys, and offline verification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from mleb.client import Client
from mleb.errors import MlebError
from mleb.evidence.dsse import EvidenceError
from mleb.evidence.keys import Keyring, format_keys, generate_key, keyring, parse_keys_text
from mleb.lab import environment
from mleb.lab.bundle_checks import Trusted, group_dirs, verify_path
from mleb.lab.environment import deployment_keys
from mleb.lab.findings import Finding
from mleb.lab.group_folder import load_run_group
from mleb.lab.records import RUN_FILE, RecordError, read_bounded
from mleb.lab.split_lists import (
    SplitsError,
    known_issues_from_registry,
    splits_from_dir,
    splits_from_registry,
)
from mleb.lab.verification import regrade
from mleb.report_proto import report_from_proto

keys_app = typer.Typer(help="The public keys attestations are signed with.")
console = Console(stderr=True)


def _graded(client: Client, competition_id: str, data: bytes, shown: str) -> dict[str, Any]:
    reply = client.grade_submission(competition_id, data, submission_path=shown)
    return report_from_proto(reply.report).to_dict()


@keys_app.callback(invoke_without_command=True)
def keys(
    context: typer.Context,
    as_json: bool = typer.Option(False, "--json", help='[{"keyid", "pem"}] instead of PEM.'),
) -> None:
    """Prints the deployment's public keys (MLEB_GRADER_ADDR, MLEB_SANDBOX_ADDR)."""
    if context.invoked_subcommand is not None:
        return
    try:
        pairs = deployment_keys()
        keyring(pairs)  # refuse to print a key whose id does not match it
    except (MlebError, EvidenceError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps([{"keyid": k, "pem": p} for k, p in pairs], indent=2))
    else:
        typer.echo(format_keys(pairs), nl=False)


@keys_app.command("generate")
def generate(
    directory: Path = typer.Argument(..., help="MLEB_SIGNING_KEY_DIR of the deployment."),
    name: str = typer.Option(..., help="File name; the name that sorts last signs."),
) -> None:
    """Writes a new Ed25519 signing key (mode 0600). Rotation: docs/verifiable-runs.md."""
    try:
        keyid = generate_key(directory, name)
    except FileExistsError as exc:
        console.print(f"[red]error:[/red] {name}.key exists already", highlight=False)
        raise typer.Exit(2) from exc
    typer.echo(f"keyid: {keyid}")


def _trusted_keys(keys_file: Path | None) -> Keyring:
    if keys_file is not None:
        return parse_keys_text(read_bounded(keys_file, 1024**2).decode("utf-8"))
    return keyring(deployment_keys())


def _trusted_lists(path: Path, splits_dir: Path | None, registry: str, token: str) -> Trusted:
    """A bundle's split lists and known issues, from outside it (never from PATH)."""
    if not (path / "runs").is_dir():
        return Trusted()
    ran = {
        str(e.get("competition_id"))
        for group_dir in group_dirs(path)
        for e in load_run_group(group_dir).entries
    }
    known = known_issues_from_registry(registry, token, ran) if registry else None
    if splits_dir is not None:
        return Trusted(splits_from_dir(splits_dir), known, f"--splits-dir {splits_dir}")
    if registry:
        return Trusted(splits_from_registry(registry, token, ran), known, f"registry {registry}")
    return Trusted()


def _table(path: Path, findings: list[Finding]) -> Table:
    table = Table("file", "check", "result", "detail")
    for finding in findings:
        try:
            shown = str(Path(finding.file).relative_to(path))
        except ValueError:
            shown = finding.file
        result = "[green]ok[/green]" if finding.ok else "[red]FAILED[/red]"
        table.add_row(shown, finding.check, result, finding.detail)
    return table


def verify(
    path: Path = typer.Argument(..., help="A run group, one run, or a leaderboard bundle."),
    keys_file: Path | None = typer.Option(
        None, "--keys", help="Trusted keys in `mleb keys` format; default: the deployment's."
    ),
    regrade_live: bool = typer.Option(
        False, "--regrade", help="Also grade every submission again through MLEB_GRADER_ADDR."
    ),
    splits_dir: Path | None = typer.Option(
        None, help="A bundle's split lists from MLE-bench's experiments/splits/*.txt."
    ),
    registry: str = typer.Option(
        "", envvar="MLEB_REGISTRY_ADDR", help="Registry for a bundle's splits and known issues."
    ),
    token: str = typer.Option("", envvar="MLEB_TOKEN", help="Bearer token for the registry."),
) -> None:
    """Checks every signature, the audit chain, the submissions and the report numbers.

    Exit 0: everything verified; 1: something failed (the table names it); 2: bad usage.
    Never trusts keys found inside PATH."""
    if not path.is_dir():
        console.print(f"[red]error:[/red] {path} is not a folder", highlight=False)
        raise typer.Exit(2)
    try:
        keys = _trusted_keys(keys_file)
        lists = _trusted_lists(path, splits_dir, registry, token)
    except (RecordError, ValueError, MlebError, EvidenceError, SplitsError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    result = verify_path(path, keys, lists)
    # Only evidence that verified is worth a live grader's time, and only its own files go.
    if regrade_live and result.ok:
        only = path.name if (path / RUN_FILE).is_file() else ""
        try:
            with environment.client() as client:
                regrade(result, group_dirs(path), lambda *args: _graded(client, *args), only)
        except MlebError as exc:
            console.print(f"[red]error:[/red] the live grader: {exc}", highlight=False)
            raise typer.Exit(2) from exc
    Console().print(_table(path, result.findings))
    failed = sum(not f.ok for f in result.findings)
    if result.ok:
        typer.echo(f"verified: {len(result.findings)} checks passed")
        return
    typer.echo(f"NOT verified: {failed} of {len(result.findings)} checks failed", err=True)
    raise typer.Exit(1)
