"""The registry's audit chain as the grader and the sandbox service use it: append, export."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc
from mleb.evidence.chain import ChainRecord, record_from_proto
from mleb.registry.v1 import registry_pb2, registry_service_pb2, registry_service_pb2_grpc

from services.common.errors import UnavailableError, from_peer

_TIMEOUT_S = 30.0


class AuditChainClient:
    def __init__(self, channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]]) -> None:
        self._stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        self._metadata = tuple(metadata)

    async def append(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[ChainRecord]:
        """Appends (kind, fields) events in order; returns their records once committed.
        Raises UnavailableError when the chain cannot take them: callers fail closed."""
        request = registry_service_pb2.AppendAuditEventsRequest(
            events=[
                registry_pb2.AuditEvent(kind=kind, fields_json=json.dumps(fields, sort_keys=True))
                for kind, fields in events
            ]
        )
        response = await self._call(
            self._stub.AppendAuditEvents, request, "did not take the record"
        )
        return [record_from_proto(r) for r in response.records]

    async def export(self, from_seq: int, to_seq: int) -> list[ChainRecord]:
        """Records from_seq..to_seq, every page."""
        records: list[ChainRecord] = []
        while from_seq:
            request = registry_service_pb2.ExportAuditChainRequest(from_seq=from_seq, to_seq=to_seq)
            page = await self._call(self._stub.ExportAuditChain, request, "could not be read")
            records.extend(record_from_proto(r) for r in page.records)
            from_seq = page.next_from_seq
        return records

    async def _call(self, method: Any, request: Any, failed: str) -> Any:
        try:
            return await method(request, metadata=self._metadata, timeout=_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            # Whatever the registry said, the caller's answer cannot go out unrecorded: the
            # call fails closed as UNAVAILABLE (from_peer keeps what the registry said).
            said = from_peer(error, "registry")
            raise UnavailableError(
                f"the audit chain {failed}: {said.message}", reason="AUDIT_UNAVAILABLE"
            ) from error
