"""`mleb registry import-builtin`: builds the built-in competitions and imports them.

Mounted on the registry app: registry_app.command("import-builtin")(import_builtin).
"""

from __future__ import annotations

from pathlib import Path

import typer

from services.builtin.catalog import BUILTINS, import_builtins
from services.cli.registry_cmds import run_import

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
    run_import(lambda installer: import_builtins(installer, competitions or (), build_dir))
