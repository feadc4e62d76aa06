"""Object keys and MLEB_OBJECT_STORE: what is refused before any store is touched."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgumentError
from services.storage.config import StoreSettings, open_store
from services.storage.keys import MAX_KEY_BYTES, MAX_SEGMENT_BYTES, check_key
from services.storage.local import LocalStore

ODD_KEYS = [
    "",
    "/etc/passwd",
    "a//b",
    "a/",
    "..",
    "a/../b",
    "a/./b",
    "./a",
    ".hidden",
    "a\\b",
    "..\\..\\x",
    "a\x00b",
    "a\nb",
    "a b",
    "caf\u00e9",
    "x" * (MAX_KEY_BYTES + 1),
    "y" * (MAX_SEGMENT_BYTES + 1),
    "/".join(["s"] * 17),
]


@pytest.mark.parametrize("key", ODD_KEYS, ids=range(len(ODD_KEYS)))
def test_odd_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        check_key(key)
    assert raised.value.reason == "BAD_OBJECT_KEY"


def test_plain_keys_are_accepted() -> None:
    assert check_key("sandboxes/sbx_0123/artifacts.tar") == [
        "sandboxes",
        "sbx_0123",
        "artifacts.tar",
    ]
    assert check_key("a" * MAX_SEGMENT_BYTES) == ["a" * MAX_SEGMENT_BYTES]


def test_no_store_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLEB_OBJECT_STORE", raising=False)
    assert StoreSettings.from_env() is None
    monkeypatch.setenv("MLEB_OBJECT_STORE", "  ")
    assert StoreSettings.from_env() is None


def test_a_file_url_opens_a_local_store(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("MLEB_OBJECT_STORE", f"file://{tmp_path}/objects")
    settings = StoreSettings.from_env()
    assert settings is not None
    assert isinstance(open_store(settings), LocalStore)


def test_s3_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLEB_OBJECT_STORE", "s3://mleb-artifacts/prod/eu")
    monkeypatch.setenv("MLEB_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MLEB_S3_SECRET_ACCESS_KEY", "sekrit")
    settings = StoreSettings.from_env()
    assert settings is not None
    assert settings.location() == ("s3", "mleb-artifacts", "prod/eu")
    assert settings.endpoint_url == "http://127.0.0.1:9"
    assert "sekrit" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/x",
        "file://relative/path",
        "file:relative",
        "s3://",
        "s3://Bad_Bucket/x",
        "s3://bucket/../x",
        "s3://bucket/a//b",
        "s3://bucket/x?versionId=1",
    ],
)
def test_malformed_urls_fail_at_start_up(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("MLEB_OBJECT_STORE", url)
    with pytest.raises(InvalidArgumentError) as raised:
        StoreSettings.from_env()
    assert str(raised.value).startswith("MLEB_OBJECT_STORE:")
