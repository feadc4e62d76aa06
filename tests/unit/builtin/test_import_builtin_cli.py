"""`mleb registry import-builtin` builds and imports the built-ins into the database."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from services.builtin.catalog import BUILTINS
from services.cli.builtin_cmds import import_builtin
from services.registry.core import RegistryCore

app = typer.Typer()
app.command("import-builtin")(import_builtin)
app.command("unused")(lambda: None)  # two commands, so typer keeps the subcommand name
runner = CliRunner()


def _env(settings) -> dict[str, str]:
    return {"MLEB_DATA_DIR": str(settings.data_dir), "MLEB_DATABASE_URL": settings.database_url}


def test_imports_every_builtin_into_the_builtin_split(settings, tmp_path):
    result = runner.invoke(
        app, ["import-builtin", "--build-dir", str(tmp_path / "kept")], env=_env(settings)
    )
    assert result.exit_code == 0, result.output
    assert f"{len(BUILTINS)} prepared" in result.output
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == sorted(BUILTINS)
    core = RegistryCore.from_settings(settings)
    try:
        listed = core.list_competitions(split="builtin").competitions
    finally:
        core.close()
    assert sorted(c.id for c in listed) == sorted(BUILTINS)


def test_unknown_competition_is_a_usage_error(settings):
    result = runner.invoke(
        app, ["import-builtin", "--competitions", "no-such-thing"], env=_env(settings)
    )
    assert result.exit_code == 2
    assert "no-such-thing" in result.output and "handwritten-digits" in result.output
