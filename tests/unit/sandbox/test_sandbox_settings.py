"""MLEB_SANDBOX_* intervals: each one a loop sleeps, so zero (a spin) is refused like nonsense."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgumentError
from services.common.settings import Settings
from services.sandbox.config import SandboxSettings

INTERVALS = {
    "MLEB_SANDBOX_DISK_CHECK_INTERVAL_S": "disk_check_interval_s",
    "MLEB_SANDBOX_SAMPLE_INTERVAL_S": "sample_interval_s",
    "MLEB_SANDBOX_QUEUE_POLL_INTERVAL_S": "queue_poll_interval_s",
}


def _base(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.parametrize("variable", INTERVALS)
@pytest.mark.parametrize("value", ["0", "0.0", "-0", "-1", "nan", "inf", "soon"])
def test_an_interval_must_be_a_positive_number_of_seconds(monkeypatch, tmp_path, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidArgumentError, match=variable):
        SandboxSettings.from_env(_base(tmp_path))


@pytest.mark.parametrize("variable", INTERVALS)
def test_an_interval_is_read_in_seconds(monkeypatch, tmp_path, variable):
    monkeypatch.setenv(variable, "0.25")
    settings = SandboxSettings.from_env(_base(tmp_path))
    assert getattr(settings, INTERVALS[variable]) == 0.25
