"""Fetching grading bundles from the registry over gRPC, cached by content digest."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from mleb.ranking import leaderboard_state_from_proto
from mleb.registry.v1 import registry_service_pb2, registry_service_pb2_grpc

from services.common.errors import (
    MlebError,
    UnavailableError,
    from_peer,
)
from services.grader.bundles import (
    GradingBundle,
    LeaderboardInfo,
    MetricRef,
    ParsedAnswersCache,
    parse_bundle,
)

_REGISTRY_TIMEOUT_S = 120.0


def _domain_error(error: grpc.aio.AioRpcError, competition_id: str) -> MlebError:
    return from_peer(
        error,
        "registry",
        reasons={"PERMISSION_DENIED": "BUNDLE_REFUSED", "FAILED_PRECONDITION": "NOT_GRADABLE"},
        explain={
            "PERMISSION_DENIED": "the registry refused the grading bundle: reading private "
            "answers needs service credentials"
        },
        metadata={"competition_id": competition_id},
    )


class RegistryBundleProvider:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        metadata: Sequence[tuple[str, str]],
        cache: ParsedAnswersCache,
    ) -> None:
        self._stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        self._metadata = tuple(metadata)
        self._cache = cache

    async def get(self, competition_id: str) -> GradingBundle:
        bundle = await self._fetch(competition_id, self._cache.latest_digest(competition_id))
        if bundle is None:  # evicted between the two calls: fetch it whole
            bundle = await self._fetch(competition_id, "")
        assert bundle is not None
        return bundle

    async def _fetch(self, competition_id: str, known_digest: str) -> GradingBundle | None:
        request = registry_service_pb2.GetGradingBundleRequest(
            competition_id=competition_id, known_digest=known_digest
        )
        header = None
        chunks: list[bytes] = []
        try:
            async for part in self._stub.GetGradingBundle(
                request, metadata=self._metadata, timeout=_REGISTRY_TIMEOUT_S
            ):
                if part.HasField("header"):
                    header = part.header
                else:
                    chunks.append(part.answers_chunk)
        except grpc.aio.AioRpcError as error:
            raise _domain_error(error, competition_id) from error
        if header is None:
            raise UnavailableError("registry sent no bundle header", reason="BAD_BUNDLE")
        if header.not_modified:
            return self._cache.get(header.digest)
        cached = self._cache.get(header.digest)
        if cached is not None:
            return cached
        bundle = await parse_bundle(
            competition_id,
            header.digest,
            b"".join(chunks),
            "jsonl" if header.answers_format == "jsonl" else "csv",
            [entry.score for entry in header.leaderboard] or None,
            header.awards_medals,
            header.lower_is_better,
            MetricRef(header.metric.name, header.id_columns, header.target_columns),
            leaderboard_state_from_proto(header.leaderboard_state, len(header.leaderboard)),
        )
        self._cache.put(bundle)
        return bundle

    def used(self, bundle: GradingBundle) -> None:
        self._cache.reweigh(bundle)

    async def leaderboard(self, competition_id: str) -> LeaderboardInfo:
        request = registry_service_pb2.GetLeaderboardRequest(competition_id=competition_id)
        try:
            response = await self._stub.GetLeaderboard(
                request, metadata=self._metadata, timeout=_REGISTRY_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            raise _domain_error(error, competition_id) from error
        scores = [entry.score for entry in response.entries]
        return LeaderboardInfo(
            scores or None,
            response.thresholds.awards_medals,
            response.lower_is_better,
            leaderboard_state_from_proto(response.thresholds.leaderboard_state, len(scores)),
        )
