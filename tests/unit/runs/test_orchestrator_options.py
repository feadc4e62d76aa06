"""`mleb run`'s option syntax: durations, sizes and KEY=VALUE lists."""

from __future__ import annotations

import pytest
import typer
from mleb.lab.run_cmds import parse_duration, parse_env, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("90m", 5400), ("1h30m", 5400), ("2d", 172800), ("45s", 45), ("600", 600),
     ("1.5h", 5400), (" 10M ", 600)],
)  # fmt: skip
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "24x", "1h 30m", "-5", "0", "0h", "24h!"])
def test_bad_durations_say_what_is_expected(text) -> None:
    with pytest.raises(typer.BadParameter):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [("16g", 16 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", 3 * 2**29), ("64gb", 64 * 2**30),
     ("1024", 1024), ("2t", 2 * 2**40), ("8k", 8192)],
)  # fmt: skip
def test_sizes(text, size) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "g", "16x", "-1g", "1.5.2g"])
def test_bad_sizes(text) -> None:
    with pytest.raises(typer.BadParameter):
        parse_size(text)


def test_env_pairs_and_secrets_from_this_shell(monkeypatch) -> None:
    assert parse_env(["A=1", "B=x=y", "C="], "--env") == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(typer.BadParameter, match="KEY=VALUE"):
        parse_env(["A"], "--env")
    monkeypatch.setenv("API_KEY", "from-shell")
    assert parse_env(["API_KEY", "OTHER=v"], "--secret-env", from_environment=True) == {
        "API_KEY": "from-shell",
        "OTHER": "v",
    }
    monkeypatch.delenv("API_KEY")
    with pytest.raises(typer.BadParameter, match="not set in the environment"):
        parse_env(["API_KEY"], "--secret-env", from_environment=True)
