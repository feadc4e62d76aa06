"""RegistryService over gRPC: proto <-> domain around RegistryCore, nothing more.

Authentication and role checks happen in the shared interceptor (using RPC_ROLES); errors
raised here are domain errors the interceptor turns into google.rpc.Status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from mleb.common.v1 import common_pb2
from mleb.evidence.chain import ChainRecord, canonical
from mleb.ranking import LEADERBOARD_STATE_TO_PROTO, leaderboard_note, ranking_to_proto
from mleb.registry.v1 import registry_pb2, registry_service_pb2, registry_service_pb2_grpc

from services.common.auth import Role, current_caller, require_competition_access
from services.common.errors import invalid_field
from services.common.redact import redact_server_paths
from services.registry.audit_chain import AuditChain, parse_event
from services.registry.core import DEFAULT_CHUNK_BYTES, RegistryCore
from services.registry.known_issues import known_issues
from services.registry.records import (
    CompetitionRecord,
    DataStatus,
    FileChunk,
    LeaderboardEntry,
    Metric,
    PublicFile,
)
from services.registry.revocations import TokenRevocationRow, TokenRevocations

_ALL = frozenset({Role.SERVICE, Role.LAB})
RPC_ROLES: dict[str, frozenset[Role]] = {
    "ListCompetitions": _ALL,
    "GetCompetition": frozenset({Role.SERVICE, Role.LAB, Role.SANDBOX}),
    "ListPublicFiles": frozenset({Role.SERVICE, Role.LAB, Role.SANDBOX}),
    "GetLeaderboard": _ALL,
    "ListSplits": _ALL,
    "DownloadPublicData": frozenset({Role.SERVICE, Role.LAB, Role.SANDBOX}),
    "GetGradingBundle": frozenset({Role.SERVICE}),
    "RevokeToken": frozenset({Role.SERVICE, Role.LAB}),
    "ListRevokedTokens": frozenset({Role.SERVICE}),
    "AppendAuditEvents": frozenset({Role.SERVICE}),
    "ExportAuditChain": _ALL,
}

_COMPLEXITY_FROM_PROTO = {
    registry_pb2.COMPLEXITY_UNSPECIFIED: "",
    registry_pb2.COMPLEXITY_LOW: "low",
    registry_pb2.COMPLEXITY_MEDIUM: "medium",
    registry_pb2.COMPLEXITY_HIGH: "high",
}
_COMPLEXITY_TO_PROTO = {name: value for value, name in _COMPLEXITY_FROM_PROTO.items()}
_DATA_STATUS_TO_PROTO = {
    DataStatus.PREPARED: registry_pb2.DATA_STATUS_PREPARED,
    DataStatus.METADATA_ONLY: registry_pb2.DATA_STATUS_METADATA_ONLY,
}

T = TypeVar("T")
_DONE = object()


async def _iterate_in_thread(items: Iterator[T]) -> AsyncIterator[T]:
    """Pulls a blocking iterator one item at a time off the event loop."""
    while (item := await asyncio.to_thread(next, items, _DONE)) is not _DONE:
        yield item  # type: ignore[misc]


async def _batches_in_thread(
    chunks: Iterator[FileChunk], *, packed: bool
) -> AsyncIterator[list[FileChunk]]:
    """Reads several chunks per thread hop: one hop per small file would cost more than the
    file itself. A packed batch is one response, so it stays near one chunk's size."""
    max_chunks, max_bytes = (512, DEFAULT_CHUNK_BYTES) if packed else (256, 8 << 20)

    def take() -> list[FileChunk]:
        batch: list[FileChunk] = []
        size = 0
        for chunk in chunks:
            batch.append(chunk)
            size += len(chunk.data)
            if len(batch) >= max_chunks or size >= max_bytes:
                break
        return batch

    while batch := await asyncio.to_thread(take):
        yield batch


def metric_to_proto(metric: Metric) -> registry_pb2.Metric:
    return registry_pb2.Metric(name=metric.name, params=metric.params)


def leaderboard_entry_to_proto(entry: LeaderboardEntry) -> registry_pb2.LeaderboardEntry:
    return registry_pb2.LeaderboardEntry(
        position=entry.position,
        score=float("nan") if entry.score is None else entry.score,
        team_name=entry.team_name,
        extra=entry.extra,
    )


def competition_to_proto(record: CompetitionRecord, *, full: bool) -> registry_pb2.Competition:
    state = record.leaderboard_status()
    message = registry_pb2.Competition(
        id=record.id,
        name=record.name,
        category=record.category,
        complexity=_COMPLEXITY_TO_PROTO.get(record.complexity, registry_pb2.COMPLEXITY_UNSPECIFIED),
        awards_medals=record.awards_medals,
        splits=record.splits,
        metric=metric_to_proto(record.metric),
        lower_is_better=record.lower_is_better,
        source=record.source.value,
        data_status=_DATA_STATUS_TO_PROTO[record.data_status],
        # Stored before imports kept server paths out; never shown to a client with them.
        data_status_reason=redact_server_paths(record.data_status_reason),
        leaderboard_size=record.leaderboard_size,
        public_data_size_bytes=record.public_data_size_bytes,
        checksums_skipped=record.checksums_skipped,
        has_obfuscated_description=record.description_obfuscated is not None,
        id_columns=record.id_columns,
        target_columns=record.target_columns,
        import_notes=[redact_server_paths(note) for note in record.notes],
        leaderboard_state=LEADERBOARD_STATE_TO_PROTO[state],
        leaderboard_note=leaderboard_note(state),
        bundle_digest=record.bundle_digest,
        public_listing_digest=record.public_listing_digest,
        public_file_count=record.public_file_count,
        # Upstream task problems (leaks, wrong setup): in every view, so no caller misses them.
        known_issues=[
            registry_pb2.KnownIssue(
                upstream_issue=issue.upstream_issue,
                url=issue.url,
                kind=issue.kind,
                title=issue.title,
                summary=issue.summary,
            )
            for issue in known_issues(record.id)
        ],
    )
    if record.imported_at is not None:
        imported_at = Timestamp()
        imported_at.FromDatetime(record.imported_at)
        message.imported_at.CopyFrom(imported_at)
    if full:
        message.description = record.description
        message.public_files.extend(_public_files_to_proto(record.public_files))
    return message


def _public_files_to_proto(files: list[PublicFile]) -> list[registry_pb2.PublicFile]:
    return [
        registry_pb2.PublicFile(path=f.path, size_bytes=f.size_bytes, sha256=f.sha256)
        for f in files
    ]


class RegistryServicer(registry_service_pb2_grpc.RegistryServiceServicer):
    def __init__(self, core: RegistryCore, revocations: TokenRevocations | None = None) -> None:
        self.core = core
        self.revocations = revocations or TokenRevocations(core.sessions)
        self.audit = AuditChain(core.sessions)

    async def ListCompetitions(
        self,
        request: registry_service_pb2.ListCompetitionsRequest,
        context: grpc.aio.ServicerContext,
    ) -> registry_service_pb2.ListCompetitionsResponse:
        if request.complexity not in _COMPLEXITY_FROM_PROTO:
            raise invalid_field("complexity", f"unknown value {request.complexity}")
        if request.view not in registry_pb2.CompetitionView.values():
            raise invalid_field("view", f"unknown value {request.view}")
        page = await asyncio.to_thread(
            self.core.list_competitions,
            split=request.split,
            category=request.category,
            complexity=_COMPLEXITY_FROM_PROTO[request.complexity],
            page_size=request.page_size,
            page_token=request.page_token,
        )
        full = request.view == registry_pb2.COMPETITION_VIEW_FULL
        records = page.competitions
        if full:
            # The FULL view carries descriptions and file lists, which listings do not load.
            records = [await asyncio.to_thread(self.core.get_competition, r.id) for r in records]
        return registry_service_pb2.ListCompetitionsResponse(
            competitions=[competition_to_proto(r, full=full) for r in records],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
        )

    async def GetCompetition(
        self, request: registry_service_pb2.GetCompetitionRequest, context: grpc.aio.ServicerContext
    ) -> registry_service_pb2.GetCompetitionResponse:
        require_competition_access(current_caller(), request.competition_id)
        variant = request.description_variant
        if variant not in common_pb2.DescriptionVariant.values():
            raise invalid_field("description_variant", f"unknown value {variant}")
        record = await asyncio.to_thread(
            self.core.get_competition,
            request.competition_id,
            obfuscated=variant == common_pb2.DESCRIPTION_VARIANT_OBFUSCATED,
            with_files=not request.omit_public_files,
        )
        return registry_service_pb2.GetCompetitionResponse(
            competition=competition_to_proto(record, full=True)
        )

    async def ListPublicFiles(
        self,
        request: registry_service_pb2.ListPublicFilesRequest,
        context: grpc.aio.ServicerContext,
    ) -> registry_service_pb2.ListPublicFilesResponse:
        require_competition_access(current_caller(), request.competition_id)
        page = await asyncio.to_thread(
            self.core.list_public_files,
            request.competition_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return registry_service_pb2.ListPublicFilesResponse(
            public_files=_public_files_to_proto(page.files),
            next_page_token=page.next_page_token,
            public_listing_digest=page.listing_digest,
        )

    async def GetLeaderboard(
        self, request: registry_service_pb2.GetLeaderboardRequest, context: grpc.aio.ServicerContext
    ) -> registry_service_pb2.GetLeaderboardResponse:
        record, thresholds = await asyncio.to_thread(
            self.core.get_leaderboard, request.competition_id
        )
        return registry_service_pb2.GetLeaderboardResponse(
            competition_id=record.id,
            entries=[leaderboard_entry_to_proto(e) for e in record.leaderboard],
            lower_is_better=record.lower_is_better,
            thresholds=ranking_to_proto(
                thresholds,
                awards_medals=record.awards_medals,
                leaderboard_state=record.leaderboard_status(),
            ),
        )

    async def ListSplits(
        self, request: registry_service_pb2.ListSplitsRequest, context: grpc.aio.ServicerContext
    ) -> registry_service_pb2.ListSplitsResponse:
        splits = await asyncio.to_thread(self.core.list_splits)
        return registry_service_pb2.ListSplitsResponse(
            splits=[
                registry_pb2.Split(
                    name=s.name, aliases=s.aliases, competition_ids=s.competition_ids
                )
                for s in splits
            ]
        )

    async def DownloadPublicData(
        self,
        request: registry_service_pb2.DownloadPublicDataRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[registry_service_pb2.DownloadPublicDataResponse]:
        require_competition_access(current_caller(), request.competition_id)
        chunks = await asyncio.to_thread(
            self.core.iter_public_file_chunks, request.competition_id, list(request.paths)
        )
        async for batch in _batches_in_thread(chunks, packed=request.packed):
            if request.packed:
                yield registry_service_pb2.DownloadPublicDataResponse(
                    chunks=[registry_service_pb2.PublicDataChunk(**vars(c)) for c in batch]
                )
                continue
            for chunk in batch:
                yield registry_service_pb2.DownloadPublicDataResponse(**vars(chunk))

    async def GetGradingBundle(
        self,
        request: registry_service_pb2.GetGradingBundleRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[registry_service_pb2.GetGradingBundleResponse]:
        header, chunks = await asyncio.to_thread(
            self.core.grading_bundle, request.competition_id, request.known_digest
        )
        yield registry_service_pb2.GetGradingBundleResponse(
            header=registry_pb2.GradingBundleHeader(
                competition_id=header.competition_id,
                digest=header.digest,
                not_modified=header.not_modified,
                metric=metric_to_proto(header.metric),
                answers_format=header.answers.format,
                answers_size_bytes=header.answers.size_bytes,
                answers_sha256=header.answers.sha256,
                leaderboard=[leaderboard_entry_to_proto(e) for e in header.leaderboard],
                lower_is_better=header.lower_is_better,
                awards_medals=header.awards_medals,
                leaderboard_state=LEADERBOARD_STATE_TO_PROTO[header.leaderboard_state],
                id_columns=header.id_columns,
                target_columns=header.target_columns,
            )
        )
        async for data in _iterate_in_thread(chunks):
            yield registry_service_pb2.GetGradingBundleResponse(answers_chunk=data)

    async def RevokeToken(
        self, request: registry_service_pb2.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> registry_service_pb2.RevokeTokenResponse:
        target = request.WhichOneof("target")
        if target is None:
            raise invalid_field("target", "name one of token, token_id or sandbox_id")
        row = await self.revocations.revoke(
            current_caller(),
            **{target: getattr(request, target)},
            expires_at=(
                request.expires_at.ToDatetime(tzinfo=UTC)
                if request.HasField("expires_at")
                else None
            ),
            reason=request.reason,
        )
        return registry_service_pb2.RevokeTokenResponse(revoked=_revoked_to_proto(row))

    async def ListRevokedTokens(
        self,
        request: registry_service_pb2.ListRevokedTokensRequest,
        context: grpc.aio.ServicerContext,
    ) -> registry_service_pb2.ListRevokedTokensResponse:
        return registry_service_pb2.ListRevokedTokensResponse(
            revoked=[_revoked_to_proto(row) for _revocation, row in await self.revocations.active()]
        )

    async def AppendAuditEvents(
        self,
        request: registry_service_pb2.AppendAuditEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> registry_service_pb2.AppendAuditEventsResponse:
        events = [
            parse_event(event.kind, event.fields_json, index)
            for index, event in enumerate(request.events)
        ]
        records = await self.audit.append(current_caller().subject, events)
        return registry_service_pb2.AppendAuditEventsResponse(
            records=[_audit_to_proto(record) for record in records]
        )

    async def ExportAuditChain(
        self,
        request: registry_service_pb2.ExportAuditChainRequest,
        context: grpc.aio.ServicerContext,
    ) -> registry_service_pb2.ExportAuditChainResponse:
        records, next_from, head = await self.audit.export(
            current_caller(), request.from_seq, request.to_seq
        )
        return registry_service_pb2.ExportAuditChainResponse(
            records=[_audit_to_proto(record) for record in records],
            next_from_seq=next_from,
            head_seq=head,
        )


def _audit_to_proto(record: ChainRecord) -> registry_pb2.AuditRecord:
    return registry_pb2.AuditRecord(
        seq=record.seq,
        prev_hash=record.prev_hash,
        body_hash=record.body_hash,
        hash=record.hash,
        body_json=canonical(record.body).decode() if record.body is not None else "",
    )


def _revoked_to_proto(row: TokenRevocationRow) -> registry_pb2.RevokedToken:
    message = registry_pb2.RevokedToken(
        token_id=row.token_id, sandbox_id=row.sandbox_id, reason=row.reason
    )
    message.revoked_at.FromDatetime(row.revoked_at)
    if row.expires_at is not None:
        message.expires_at.FromDatetime(row.expires_at)
    return message
