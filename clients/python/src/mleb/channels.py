"""Channels with deadlines, retries on UNAVAILABLE and round-robin over several addresses."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

import grpc

# Calls that are safe to repeat: reads, stateless grading, and stopping.
IDEMPOTENT_METHODS: dict[str, tuple[str, ...]] = {
    "mleb.registry.v1.RegistryService": (
        "ListCompetitions",
        "GetCompetition",
        "ListPublicFiles",
        "GetLeaderboard",
        "ListSplits",
        "DownloadPublicData",
        "GetGradingBundle",
        "ListRevokedTokens",
        "ExportAuditChain",
    ),
    "mleb.grader.v1.GraderService": (
        "ValidateSubmission",
        "ScoreSubmission",
        "GradeSubmission",
        "RankScore",
        "ListPublicKeys",
    ),
    "mleb.sandbox.v1.SandboxService": (
        "GetSandbox",
        "ListSandboxes",
        "StreamLogs",
        "StopSandbox",
        "DownloadArtifacts",
        "ListGpus",
        "ListPublicKeys",
    ),
}

# gRPC's own retry machinery does the backoff; only idempotent methods are listed.
_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [
                    {"service": service, "method": method}
                    for service, methods in IDEMPOTENT_METHODS.items()
                    for method in methods
                ],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)
_MAX_MESSAGE = 16 * 1024 * 1024
OPTIONS = [
    ("grpc.service_config", _SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
]


def target_for(addresses: str | Sequence[str]) -> str:
    """One gRPC target for one or several "host:port" addresses.

    Several IP addresses become an `ipv4:`/`ipv6:` list the round-robin policy spreads calls
    over; a single name is resolved by DNS (a scaled service's name yields all replicas).
    """
    if isinstance(addresses, str):
        addresses = [a.strip() for a in addresses.split(",") if a.strip()]
    if not addresses:
        raise ValueError("no server address given")
    if len(addresses) == 1:
        return addresses[0]
    hosts = [a.rsplit(":", 1)[0].strip("[]") for a in addresses]
    try:
        versions = {ipaddress.ip_address(h).version for h in hosts}
    except ValueError as exc:
        raise ValueError("several addresses must all be IP addresses (host:port)") from exc
    if len(versions) != 1:
        raise ValueError("several addresses must all be IPv4 or all IPv6")
    return f"ipv{versions.pop()}:" + ",".join(addresses)


def credentials(tls_ca: bytes | None) -> grpc.ChannelCredentials | None:
    return grpc.ssl_channel_credentials(tls_ca) if tls_ca is not None else None


def sync_channel(addresses: str | Sequence[str], tls_ca: bytes | None = None) -> grpc.Channel:
    target, creds = target_for(addresses), credentials(tls_ca)
    if creds is not None:
        return grpc.secure_channel(target, creds, options=OPTIONS)
    return grpc.insecure_channel(target, options=OPTIONS)


def async_channel(addresses: str | Sequence[str], tls_ca: bytes | None = None) -> grpc.aio.Channel:
    target, creds = target_for(addresses), credentials(tls_ca)
    if creds is not None:
        return grpc.aio.secure_channel(target, creds, options=OPTIONS)
    return grpc.aio.insecure_channel(target, options=OPTIONS)
