"""Channels and credentials one mleb service uses to call another."""

from __future__ import annotations

import grpc

from services.common.auth import Role, TokenAuthority
from services.common.server import MAX_MESSAGE_BYTES
from services.common.settings import Settings

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


def service_channel(address: str, settings: Settings) -> grpc.aio.Channel:
    if settings.client_tls_ca is not None:
        credentials = grpc.ssl_channel_credentials(settings.client_tls_ca.read_bytes())
        return grpc.aio.secure_channel(address, credentials, options=_CHANNEL_OPTIONS)
    return grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)


def service_token(settings: Settings, subject: str) -> str:
    """The token this service presents: configured, or minted from the shared secret."""
    if settings.service_token:
        return settings.service_token
    if settings.auth_secret:
        return TokenAuthority.from_spec(settings.auth_secret).issue(Role.SERVICE, subject)
    return ""


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
