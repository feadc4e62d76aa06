"""Channels and credentials one mleb service uses to call another."""

from __future__ import annotations

import grpc
from mleb.channels import async_channel

from services.common.auth import Role, TokenAuthority
from services.common.settings import Settings


def service_channel(address: str, settings: Settings) -> grpc.aio.Channel:
    """The same channel labs get (mleb.channels): retries of idempotent calls on
    UNAVAILABLE, round-robin over a scaled service's replicas, the same message limits."""
    tls_ca = settings.client_tls_ca.read_bytes() if settings.client_tls_ca is not None else None
    return async_channel(address, tls_ca)


def service_token(settings: Settings, subject: str) -> str:
    """The token this service presents: configured, or minted from the shared secret."""
    if settings.service_token:
        return settings.service_token
    if settings.auth_secret:
        return TokenAuthority.from_spec(settings.auth_secret).issue(Role.SERVICE, subject)
    return ""


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()
