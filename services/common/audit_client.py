"""The registry's audit chain as the grader and the sandbox service use it: append, export.

Appends made while another is in flight go together in the next call (a group commit): a
burst of sandbox starts costs the registry a few transactions, not one each, and no caller
waits for more than the call in flight and its own. Each caller's events stay together and
in order, and each caller gets back its own records.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from mleb.evidence.chain import ChainRecord, record_from_proto
from mleb.registry.v1 import registry_pb2, registry_service_pb2, registry_service_pb2_grpc

from services.common.errors import UnavailableError, from_peer

_TIMEOUT_S = 30.0
# The registry's cap on events per call (services/registry/audit_chain.py).
MAX_EVENTS_PER_CALL = 1000


@dataclass
class _Append:
    events: list[tuple[str, dict[str, Any]]]
    done: asyncio.Future[list[ChainRecord]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, records: list[ChainRecord] | None, error: BaseException | None) -> None:
        if self.done.done():  # the caller was cancelled; its records stand regardless
            return
        if error is not None:
            self.done.set_exception(error)
        else:
            self.done.set_result(records or [])


class AuditChainClient:
    def __init__(self, channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]]) -> None:
        self._stub = registry_service_pb2_grpc.RegistryServiceStub(channel)
        self._metadata = tuple(metadata)
        self._waiting: list[_Append] = []
        self._sender: asyncio.Task[None] | None = None

    async def append(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[ChainRecord]:
        """Appends (kind, fields) events in order; returns their records once committed.
        Raises UnavailableError when the chain cannot take them: callers fail closed."""
        pending = _Append(list(events))
        self._waiting.append(pending)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_waiting())
        return await asyncio.shield(pending.done)

    async def _send_waiting(self) -> None:
        while self._waiting:
            group: list[_Append] = []
            count = 0
            while self._waiting and (
                not group or count + len(self._waiting[0].events) <= MAX_EVENTS_PER_CALL
            ):
                group.append(self._waiting.pop(0))
                count += len(group[-1].events)
            await self._send(group)

    async def _send(self, group: list[_Append]) -> None:
        try:
            records = await self._append_now([event for each in group for event in each.events])
        except UnavailableError as exc:
            if len(group) > 1 and _refused(exc):
                # A refused call committed nothing: each caller tries alone, so one caller's
                # refused event never fails another's.
                for each in group:
                    await self._send([each])
                return
            for each in group:
                each.settle(None, exc)
            return
        except BaseException as exc:  # cancelled, or a reply we cannot read: nobody hangs
            failed = UnavailableError(
                f"the audit chain did not take the record: {type(exc).__name__}",
                reason="AUDIT_UNAVAILABLE",
            )
            for each in group:
                each.settle(None, failed)
            raise
        at = 0
        for each in group:
            each.settle(records[at : at + len(each.events)], None)
            at += len(each.events)

    async def _append_now(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[ChainRecord]:
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


def _refused(error: UnavailableError) -> bool:
    """The registry refused the events themselves, so it committed none of them."""
    cause = error.__cause__
    return (
        isinstance(cause, grpc.aio.AioRpcError) and cause.code() == grpc.StatusCode.INVALID_ARGUMENT
    )
