"""The registry as the sandbox sees it: competition metadata and public data, over gRPC.

Only public data is ever requested; the private answers have no call here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc
from mleb.common.v1 import common_pb2
from mleb.registry.v1 import registry_pb2, registry_service_pb2, registry_service_pb2_grpc

from services.common.errors import MlebError, from_peer
from services.sandbox.node.public_fetch import Piece
from services.sandbox.records import Competition, DescriptionVariant, PublicFile

_TIMEOUT_S = 60.0
_LISTING_PAGE = 10_000
_DOWNLOAD_TIMEOUT_S = 3600.0
# Pieces are written in batches, one worker-thread hop per batch instead of per file.
_BATCH_PIECES = 512
_BATCH_BYTES = 8 << 20
_VARIANTS = {
    DescriptionVariant.PLAIN: common_pb2.DESCRIPTION_VARIANT_PLAIN,
    DescriptionVariant.OBFUSCATED: common_pb2.DESCRIPTION_VARIANT_OBFUSCATED,
}


def _domain_error(error: grpc.aio.AioRpcError, competition_id: str) -> MlebError:
    return from_peer(
        error,
        "registry",
        reasons={
            "NOT_FOUND": "COMPETITION_NOT_FOUND",
            "FAILED_PRECONDITION": "COMPETITION_NOT_READY",
        },
        metadata={"competition_id": competition_id},
    )


class RegistryCompetitions:
    def __init__(self, channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]]) -> None:
        self._stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        self._metadata = tuple(metadata)

    async def get(self, competition_id: str, variant: DescriptionVariant) -> Competition:
        request = registry_service_pb2.GetCompetitionRequest(
            competition_id=competition_id,
            description_variant=_VARIANTS[variant],
            omit_public_files=True,
        )
        try:
            reply = await self._stub.GetCompetition(
                request, metadata=self._metadata, timeout=_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            raise _domain_error(error, competition_id) from error
        found = reply.competition
        return Competition(
            id=found.id,
            prepared=found.data_status == registry_pb2.DATA_STATUS_PREPARED,
            data_status_reason=found.data_status_reason,
            description=found.description,
            listing_digest=found.public_listing_digest,
            file_count=found.public_file_count,
            bundle_digest=found.bundle_digest,
        )

    async def listing(self, competition_id: str) -> list[PublicFile]:
        """The public files, page after page; the caller checks them against the digest
        GetCompetition gave."""
        files: list[PublicFile] = []
        token = ""
        while True:
            request = registry_service_pb2.ListPublicFilesRequest(
                competition_id=competition_id, page_size=_LISTING_PAGE, page_token=token
            )
            try:
                reply = await self._stub.ListPublicFiles(
                    request, metadata=self._metadata, timeout=_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as error:
                raise _domain_error(error, competition_id) from error
            files.extend(PublicFile(f.path, f.size_bytes, f.sha256) for f in reply.public_files)
            token = reply.next_page_token
            if not token:
                return files

    async def pieces(self, competition_id: str, paths: list[str]) -> AsyncIterator[list[Piece]]:
        """The named public files' bytes in batches; the caller verifies them."""
        request = registry_service_pb2.DownloadPublicDataRequest(
            competition_id=competition_id, paths=paths, packed=True
        )
        batch: list[Piece] = []
        size = 0
        try:
            async for reply in self._stub.DownloadPublicData(
                request, metadata=self._metadata, timeout=_DOWNLOAD_TIMEOUT_S
            ):
                # A registry that predates `packed` sends one chunk per reply.
                for chunk in reply.chunks or [reply]:
                    batch.append(Piece(chunk.path, chunk.data, chunk.last_chunk))
                    size += len(chunk.data)
                if len(batch) >= _BATCH_PIECES or size >= _BATCH_BYTES:
                    yield batch
                    batch, size = [], 0
        except grpc.aio.AioRpcError as error:
            raise _domain_error(error, competition_id) from error
        if batch:
            yield batch
