"""Assembles the registry service from settings."""

from __future__ import annotations

from mleb.registry.v1 import registry_service_pb2_grpc

from services.common.server import ServiceDefinition
from services.common.settings import Settings
from services.registry.core import RegistryCore
from services.registry.servicer import RPC_ROLES, RegistryServicer


def registry_service(settings: Settings) -> ServiceDefinition:
    core = RegistryCore.from_settings(settings)

    async def close() -> None:
        core.close()

    return ServiceDefinition(
        full_name="mleb.registry.v1.RegistryService",
        servicer=RegistryServicer(core),
        add_to_server=registry_service_pb2_grpc.add_RegistryServiceServicer_to_server,
        rpc_roles=RPC_ROLES,
        close=close,
    )
