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
from mleb.lab.verification import Finding, regrade, verify_path
from mleb.report_proto import report_from_proto

keys_app = typer.Typer(help="The public keys attestations are signed with.")
console = Console(stderr=True)


def _graded(client: Client, competition_id: str, file: Path, shown: str) -> dict[str, Any]:
    reply = client.grade_submission(competition_id, file, submission_path=shown)
    return report_from_proto(reply.report).to_dict()


def deployment_keys() -> list[tuple[str, str]]:
    """Every key the configured grader and sandbox service publish (ListPublicKeys)."""
    found: dict[str, str] = {}
    with environment.client() as client:
        for listing in (client.list_grader_keys(), client.list_sandbox_keys()):
            found.update((key.keyid, key.pem) for key in listing.keys)
    return sorted(found.items())


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


def _trusted(keys_file: Path | None) -> Keyring:
    if keys_file is not None:
        return parse_keys_text(keys_file.read_text(encoding="utf-8"))
    return keyring(deployment_keys())


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
) -> None:
    """Checks every signature, the audit chain, the submissions and the report numbers.

    Exit 0: everything verified; 1: something failed (the table names it); 2: bad usage.
    Never trusts keys found inside PATH."""
    if not path.is_dir():
        console.print(f"[red]error:[/red] {path} is not a folder", highlight=False)
        raise typer.Exit(2)
    try:
        trusted = _trusted(keys_file)
    except (OSError, MlebError, EvidenceError) as exc:
        console.print(f"[red]error:[/red] no trusted keys: {exc}", highlight=False)
        raise typer.Exit(2) from exc
    result = verify_path(path, trusted)
    if regrade_live:
        try:
            with environment.client() as client:
                regrade(result, path, lambda cid, file, shown: _graded(client, cid, file, shown))
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
