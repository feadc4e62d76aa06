"""Assembles the grader service from settings."""

from __future__ import annotations

from mleb.grader.v1 import grader_service_pb2_grpc

from services.common.audit_client import AuditChainClient
from services.common.channels import bearer_metadata, service_channel, service_token
from services.common.revocation import registry_revocations
from services.common.server import ServiceDefinition
from services.common.settings import Settings
from services.common.signing import signing_keys
from services.grader.bundles import ParsedAnswersCache
from services.grader.core import GraderCore
from services.grader.evidence import GraderEvidence
from services.grader.rate_limit import TokenBucketLimiter
from services.grader.registry_bundles import RegistryBundleProvider
from services.grader.servicer import RPC_ROLES, GraderServicer
from services.grader.uploads import SandboxUploadPolicy


def grader_service(settings: Settings) -> ServiceDefinition:
    channel = service_channel(settings.registry_addr, settings)
    credentials = bearer_metadata(service_token(settings, "grader"))
    bundles = RegistryBundleProvider(
        channel,
        credentials,
        ParsedAnswersCache(settings.answers_cache_bytes),
    )
    core = GraderCore(
        bundles,
        validate_limiter=TokenBucketLimiter(settings.validate_rate_per_s, settings.validate_burst),
        max_submission_bytes=settings.max_submission_bytes,
        sandbox_uploads=SandboxUploadPolicy(
            size_multiple=settings.sandbox_upload_multiple,
            min_bytes=settings.sandbox_upload_min_bytes,
            max_bytes=min(settings.sandbox_upload_max_bytes, settings.max_submission_bytes),
        ),
    )

    async def close() -> None:
        await channel.close()

    return ServiceDefinition(
        full_name="mleb.grader.v1.GraderService",
        servicer=GraderServicer(
            core,
            GraderEvidence(
                AuditChainClient(channel, credentials), signing_keys(settings.signing_key_dir)
            ),
        ),
        add_to_server=grader_service_pb2_grpc.add_GraderServiceServicer_to_server,
        rpc_roles=RPC_ROLES,
        close=close,
        revocations=registry_revocations(
            channel,
            credentials,
            ttl_s=settings.revocation_cache_s,
            max_stale_s=settings.revocation_max_stale_s,
        ),
    )
