"""Client.revoke_token builds the request RevokeToken expects, one target at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest.mock import MagicMock

import pytest
from mleb.client import _Calls


class _Recorder(_Calls):
    def __init__(self) -> None:
        super().__init__(token="", channel_factory=lambda _address, _tls: MagicMock())

    def _call(self, method, request, timeout):
        return method, request


def test_revoke_by_token_id_with_expiry_and_reason() -> None:
    client = _Recorder()
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    method, request = client.revoke_token(token_id="jti-1", expires_at=expiry, reason="leaked")
    assert method is client.registry.RevokeToken
    assert request.WhichOneof("target") == "token_id" and request.token_id == "jti-1"
    assert request.expires_at.ToDatetime(tzinfo=UTC) == expiry and request.reason == "leaked"


def test_revoke_by_token_leaves_the_expiry_to_the_server() -> None:
    _method, request = _Recorder().revoke_token(token="eyJ...")
    assert request.WhichOneof("target") == "token" and not request.HasField("expires_at")


@pytest.mark.parametrize("targets", [{}, {"token": "t", "sandbox_id": "sb"}])
def test_exactly_one_target(targets: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        _Recorder().revoke_token(**targets)
