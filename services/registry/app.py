"""Assembles the registry service from settings."""

from __future__ import annotations

from mleb.registry.v1 import registry_service_pb2_grpc

from services.common.auth import TokenAuthority
from services.common.revocation import CachedRevocations
from services.common.server import ServiceDefinition
from services.common.settings import Settings
from services.registry.core import RegistryCore
from services.registry.revocations import TokenRevocations
from services.registry.servicer import RPC_ROLES, RegistryServicer


def registry_service(settings: Settings) -> ServiceDefinition:
    core = RegistryCore.from_settings(settings)
    authority = TokenAuthority.from_spec(settings.auth_secret) if settings.auth_secret else None
    revocations = TokenRevocations(core.sessions, authority)

    async def close() -> None:
        core.close()

    return ServiceDefinition(
        full_name="mleb.registry.v1.RegistryService",
        servicer=RegistryServicer(core, revocations),
        add_to_server=registry_service_pb2_grpc.add_RegistryServiceServicer_to_server,
        rpc_roles=RPC_ROLES,
        close=close,
        # The registry holds the list: its own cache reads the database directly.
        revocations=CachedRevocations(
            revocations.fetch,
            ttl_s=settings.revocation_cache_s,
            max_stale_s=settings.revocation_max_stale_s,
        ),
    )
