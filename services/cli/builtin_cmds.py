"""`mleb registry import-builtin`: builds the built-in competitions and imports them.

Mounted on the registry app: registry_app.command("import-builtin")(import_builtin).
"""

from __future__ import annotations

from pathlib import Path

import typer

from services.builtin.catalog import BUILTINS, import_builtins
from services.cli.registry_cmds import _installer, _print_report, errors
from services.common.errors import MlebError

_COMPETITIONS_HELP = f"Import only these (repeat the option): {', '.join(BUILTINS)}."


def import_builtin(
    competitions: list[str] | None = typer.Option(
        None,
        "--competitions",
        help=_COMPETITIONS_HELP,
    ),
    build_dir: Path | None = typer.Option(
        None, help="Keep the built competition folders here (default: a temporary folder)."
    ),
) -> None:
    """Builds the built-in competitions from packaged data and imports them (no downloads)."""
    try:
        core, installer = _installer()
        try:
            report = import_builtins(installer, competitions or (), build_dir)
        finally:
            core.close()
    except MlebError as exc:
        errors.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    _print_report(report)
    if report.failed:
        raise typer.Exit(1)
