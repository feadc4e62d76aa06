"""Assembles the sandbox service from settings, and reconciles with the engine on start."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from mleb.sandbox.v1 import sandbox_service_pb2_grpc

from services.common import db
from services.common.audit_client import AuditChainClient
from services.common.auth import TokenAuthority
from services.common.channels import bearer_metadata, service_channel, service_token
from services.common.errors import FailedPreconditionError
from services.common.revocation import registry_revocations
from services.common.server import ServiceDefinition
from services.common.settings import Settings
from services.common.signing import signing_keys
from services.sandbox.backends import registry
from services.sandbox.backends.base import Backend
from services.sandbox.config import SandboxSettings
from services.sandbox.db import store
from services.sandbox.gpus.inventory import GpuInventory
from services.sandbox.gpus.simulated_nvml import simulated_node
from services.sandbox.lifecycle.core import SandboxCore
from services.sandbox.lifecycle.evidence import EvidenceSetup
from services.sandbox.lifecycle.token_revocation import SandboxTokenRevoker
from services.sandbox.node.egress_log import EgressLog
from services.sandbox.node.egress_proxy import AddressPolicy, parse_address_allowances
from services.sandbox.node.endpoints import SandboxEndpoints
from services.sandbox.node.registry_client import RegistryCompetitions
from services.sandbox.servicer import RPC_ROLES, SandboxServicer

log = structlog.get_logger("mleb.sandbox")


def choose_backend(settings: SandboxSettings) -> Backend:
    """The backend MLEB_SANDBOX_BACKEND names, if this core can drive it: one whose outputs
    it reads on its host (for a scheduler-placed backend, a filesystem the nodes share)."""
    backend = registry.choose(settings)
    if not backend.capabilities.outputs_on_host:
        raise FailedPreconditionError(
            f"MLEB_SANDBOX_BACKEND={backend.name}: this sandbox service drives only backends "
            "whose outputs it can read on its host",
            reason="BACKEND_NOT_SUPPORTED",
        )
    return backend


def sandbox_service(
    settings: Settings, sandbox_settings: SandboxSettings | None = None, nvml: Any = None
) -> ServiceDefinition:
    """Must be called with an event loop running: reconcile starts right away, and RPCs that
    change state wait until it is done. `nvml` replaces pynvml (tests on GPU-less machines);
    MLEB_SANDBOX_SIMULATED_GPUS does the same for a served process."""
    sandbox_settings = sandbox_settings or SandboxSettings.from_env(settings)
    if nvml is None and sandbox_settings.simulated_gpus:
        log.warning(
            "simulated_gpus_in_use",
            count=sandbox_settings.simulated_gpus,
            note="these GPUs are NOT real: MLEB_SANDBOX_SIMULATED_GPUS is for development and "
            "testing only; leases and records are real, the devices are not",
        )
        nvml = simulated_node(sandbox_settings.simulated_gpus)
    engine = store.open_database(settings.database_url)
    channel = service_channel(settings.registry_addr, settings)
    sessions = db.create_session_factory(engine)
    endpoints = SandboxEndpoints(
        settings.grader_addr,
        settings,
        AddressPolicy(
            parse_address_allowances(
                sandbox_settings.egress_allow_addresses, "MLEB_SANDBOX_EGRESS_ALLOW_ADDRESSES"
            )
        ),
        EgressLog(sessions, sandbox_settings.egress_max_destinations),
    )
    revoker = SandboxTokenRevoker(
        channel,
        bearer_metadata(service_token(settings, "sandbox")),
        sandbox_settings.token_margin_s,
    )
    core = SandboxCore(
        sessions,
        choose_backend(sandbox_settings),
        RegistryCompetitions(channel, bearer_metadata(service_token(settings, "sandbox"))),
        endpoints,
        GpuInventory(sandbox_settings.node, nvml=nvml),
        sandbox_settings,
        TokenAuthority.from_spec(settings.auth_secret) if settings.auth_secret else None,
        EvidenceSetup(
            AuditChainClient(channel, bearer_metadata(service_token(settings, "sandbox"))),
            signing_keys(settings.signing_key_dir),
        ),
        on_sandbox_finished=revoker.sandbox_finished,
    )
    starting = asyncio.get_running_loop().create_task(core.start())

    async def close() -> None:
        starting.cancel()
        await core.close()
        await endpoints.aclose()
        await revoker.aclose()
        await channel.close()
        engine.dispose()

    return ServiceDefinition(
        full_name="mleb.sandbox.v1.SandboxService",
        servicer=SandboxServicer(core),
        add_to_server=sandbox_service_pb2_grpc.add_SandboxServiceServicer_to_server,
        rpc_roles=RPC_ROLES,
        close=close,
        revocations=registry_revocations(
            channel,
            bearer_metadata(service_token(settings, "sandbox")),
            ttl_s=settings.revocation_cache_s,
            max_stale_s=settings.revocation_max_stale_s,
        ),
    )
