"""The one bootstrap every mleb server starts through.

grpc.aio with the standard health service, reflection, request-id logging, Prometheus
metrics, bearer-token auth, optional TLS, and a graceful stop: health NOT_SERVING, then
server.stop(grace), then each service closes its resources.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from services.common import auth
from services.common.decoding import DecodeInterceptor
from services.common.errors import FailedPreconditionError
from services.common.interceptors import (
    AuthInterceptor,
    RequestInterceptor,
    RevocationCheck,
    RpcMetrics,
)
from services.common.logging import configure_logging
from services.common.settings import Settings

log = structlog.get_logger("mleb.server")

# Submissions and data stream in chunks, so a message never needs to be large.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# What a server sends is its own making: GetCompetition's full listing of ~200,000 public
# files with their checksums is ~20 MB, and a million ~100 MB, for a caller that raised its
# own receive limit (ListPublicFiles pages it for everyone else). Receiving stays at 16 MiB.
MAX_SEND_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ServiceDefinition:
    """One gRPC service to host: its servicer, how to register it, and who may call what."""

    full_name: str
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    # Short method name -> roles allowed to call it.
    rpc_roles: Mapping[str, frozenset[auth.Role]]
    close: Callable[[], Awaitable[None]] | None = None
    # How this server learns which tokens are revoked (services.common.revocation).
    revocations: RevocationCheck | None = None

    def full_method_roles(self) -> dict[str, frozenset[auth.Role]]:
        return {f"/{self.full_name}/{name}": roles for name, roles in self.rpc_roles.items()}


def token_authority(settings: Settings) -> auth.TokenAuthority | None:
    """None means auth is off, which only an explicit MLEB_AUTH_DISABLED allows."""
    if settings.auth_disabled:
        log.warning("auth_disabled", note="MLEB_AUTH_DISABLED is set: every caller is trusted")
        return None
    if not settings.auth_secret:
        raise FailedPreconditionError(
            "MLEB_AUTH_SECRET is not set; set it (kid:secret pairs) or, for development "
            "only, set MLEB_AUTH_DISABLED=1",
            reason="AUTH_NOT_CONFIGURED",
        )
    return auth.TokenAuthority.from_spec(settings.auth_secret)


def _server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    tls = settings.tls
    if tls is None:
        return None
    ca = tls.client_ca_file.read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


class RunningServer:
    """A started server; `stop` is idempotent."""

    def __init__(
        self,
        server: grpc.aio.Server,
        port: int,
        health: HealthServicer,
        services: Sequence[ServiceDefinition],
        metrics_port: int | None,
        metrics_http: Any,
    ) -> None:
        self.server = server
        self.port = port
        self.health = health
        self.services = list(services)
        self.metrics_port = metrics_port
        self._metrics_http = metrics_http
        self._stopped = asyncio.Event()
        self._stopping = False

    async def stop(self, grace: float | None = 5.0) -> None:
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        log.info("server_stopping", port=self.port, grace_s=grace)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for service in self.services:
            if service.close is not None:
                await service.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        self._stopped.set()
        log.info("server_stopped", port=self.port)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


async def start_server(
    services: Sequence[ServiceDefinition],
    settings: Settings,
    *,
    port: int,
    host: str | None = None,
) -> RunningServer:
    """Starts a server on host:port (port 0 picks a free one)."""
    configure_logging(settings.log_level)
    registry = CollectorRegistry()
    rpc_roles: dict[str, frozenset[auth.Role]] = {}
    for service in services:
        rpc_roles.update(service.full_method_roles())
    server = grpc.aio.server(
        interceptors=[
            RequestInterceptor(RpcMetrics(registry)),
            AuthInterceptor(
                token_authority(settings),
                rpc_roles,
                next((s.revocations for s in services if s.revocations is not None), None),
            ),
            DecodeInterceptor(),
        ],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for service in services:
        service.add_to_server(service.servicer, server)
    reflection.enable_server_reflection(
        [s.full_name for s in services]
        + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    address = f"{host or settings.host}:{port}"
    credentials = _server_credentials(settings)
    bound = (
        server.add_secure_port(address, credentials)
        if credentials
        else server.add_insecure_port(address)
    )
    metrics_http = None
    metrics_port = None
    if settings.metrics_port >= 0:
        metrics_http, _thread = start_http_server(
            settings.metrics_port, addr=host or settings.host, registry=registry
        )
        metrics_port = metrics_http.server_port
    await server.start()
    for service in services:
        await health.set(service.full_name, health_pb2.HealthCheckResponse.SERVING)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "server_started",
        address=f"{host or settings.host}:{bound}",
        services=[s.full_name for s in services],
        tls=credentials is not None,
        metrics_port=metrics_port,
    )
    return RunningServer(server, bound, health, services, metrics_port, metrics_http)


async def run_until_signalled(servers: Sequence[RunningServer], grace: float) -> None:
    """Blocks until SIGTERM or SIGINT, then stops every server gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal_received")
    await asyncio.gather(*(s.stop(grace) for s in servers))
