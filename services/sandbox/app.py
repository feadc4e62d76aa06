"""Assembles the sandbox service from settings, and reconciles with the engine on start."""

from __future__ import annotations

import asyncio
from typing import Any

import docker
import docker.errors
import structlog
from mleb.sandbox.v1 import sandbox_service_pb2_grpc

from services.common import db
from services.common.audit_client import AuditChainClient
from services.common.auth import TokenAuthority
from services.common.channels import bearer_metadata, service_channel, service_token
from services.common.errors import FailedPreconditionError, invalid_field
from services.common.revocation import registry_revocations
from services.common.server import ServiceDefinition
from services.common.settings import Settings
from services.common.signing import signing_keys
from services.sandbox import store
from services.sandbox.backends.base import Backend
from services.sandbox.backends.docker import DockerBackend
from services.sandbox.backends.local import LocalBackend
from services.sandbox.config import SandboxSettings
from services.sandbox.core import SandboxCore
from services.sandbox.egress_log import EgressLog
from services.sandbox.egress_proxy import AddressPolicy, parse_address_allowances
from services.sandbox.endpoints import SandboxEndpoints
from services.sandbox.evidence import EvidenceSetup
from services.sandbox.gpus import GpuInventory
from services.sandbox.registry_client import RegistryCompetitions
from services.sandbox.servicer import RPC_ROLES, SandboxServicer
from services.sandbox.simulated_nvml import simulated_node
from services.sandbox.token_revocation import SandboxTokenRevoker

log = structlog.get_logger("mleb.sandbox")


def _docker_client() -> docker.DockerClient | None:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        return None
    return client


def choose_backend(settings: SandboxSettings, sidecar_image: str = "") -> Backend:
    """docker, local, or auto: Docker when an engine answers, else local (with a warning)."""
    if settings.backend not in {"auto", "docker", "local"}:
        raise invalid_field("MLEB_SANDBOX_BACKEND", "one of auto, docker, local")
    if settings.backend != "local":
        client = _docker_client()
        if client is not None:
            extra = {"sidecar_image": sidecar_image} if sidecar_image else {}
            return DockerBackend(client, **extra)
        if settings.backend == "docker":
            raise FailedPreconditionError(
                "MLEB_SANDBOX_BACKEND=docker but no Docker engine answers",
                reason="NO_DOCKER_ENGINE",
            )
        log.warning("no_docker_engine", note="falling back to the local backend")
    return LocalBackend(settings.work_dir / "local-runs")


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
        choose_backend(sandbox_settings, sandbox_settings.sidecar_image),
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
