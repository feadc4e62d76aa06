"""Server interceptors: request context + error mapping + metrics, and authentication."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common import auth
from services.common.errors import (
    MlebError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from services.common.rpc_handlers import CallScope, ScopedInterceptor


class RevocationCheck(Protocol):
    async def check(self, caller: auth.Caller) -> None: ...


ERROR_DOMAIN = "mleb"
# Standard services anyone may call: load balancers probe health, grpcurl uses reflection.
PUBLIC_SERVICE_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

log = structlog.get_logger("mleb.rpc")


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


# Status and details travel in trailers, which peers cap at a few KiB: an error that echoes
# a long value would come back as RESOURCE_EXHAUSTED on metadata size instead of itself.
# These budgets (UTF-8 bytes) keep the whole trailer far below that.
MAX_MESSAGE_BYTES = 1024
MAX_FIELD_BYTES = 128
MAX_DESCRIPTION_BYTES = 256
MAX_VIOLATIONS = 4


def cut(text: str, max_bytes: int) -> str:
    """`text` within max_bytes of UTF-8, marked with an ellipsis where it was cut."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    return raw[: max_bytes - 3].decode(errors="ignore") + "…"


def status_for(error: MlebError, request_id: str) -> grpc.Status:
    """Builds the google.rpc.Status for a domain error, with typed details."""
    metadata = {key: cut(value, MAX_FIELD_BYTES) for key, value in error.metadata.items()}
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason,
                domain=ERROR_DOMAIN,
                metadata={**metadata, "request_id": request_id},
            )
        )
    ]
    if error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=cut(v.field, MAX_FIELD_BYTES),
                            description=cut(v.description, MAX_DESCRIPTION_BYTES),
                        )
                        for v in error.violations[:MAX_VIOLATIONS]
                    ]
                )
            )
        )
    if isinstance(error, ResourceExhaustedError) and error.quota:
        details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=cut(q.subject, MAX_FIELD_BYTES),
                            description=cut(q.description, MAX_DESCRIPTION_BYTES),
                        )
                        for q in error.quota[:MAX_VIOLATIONS]
                    ]
                )
            )
        )
    message = cut(error.message, MAX_MESSAGE_BYTES)
    return rpc_status.to_status(
        status_pb2.Status(code=getattr(code_pb2, error.code), message=message, details=details)
    )


def internal_status(request_id: str) -> grpc.Status:
    """No stack trace leaves the server; the request id finds it in the logs."""
    return rpc_status.to_status(
        status_pb2.Status(
            code=code_pb2.INTERNAL,
            message=f"internal error; see server logs for request id {request_id}",
            details=[
                _pack(
                    error_details_pb2.ErrorInfo(
                        reason="INTERNAL",
                        domain=ERROR_DOMAIN,
                        metadata={"request_id": request_id},
                    )
                )
            ],
        )
    )


class RpcMetrics:
    """Per-RPC counts and latencies, on a registry owned by one server."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "mleb_rpc_requests",
            "RPCs handled, by method and status code.",
            ["method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "mleb_rpc_duration_seconds",
            "RPC handling time, by method.",
            ["method"],
            registry=registry,
        )


class RequestInterceptor(ScopedInterceptor):
    """Outermost: binds a request id, maps errors to rich statuses, logs and measures."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    def scope_for(self, method: str) -> CallScope:
        @asynccontextmanager
        async def scope(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            incoming = dict(context.invocation_metadata() or ())
            request_id = str(incoming.get("x-request-id") or uuid.uuid4().hex)
            structlog.contextvars.bind_contextvars(request_id=request_id, rpc=method)
            started = time.perf_counter()
            code = "OK"
            try:
                yield
            except MlebError as error:
                code = error.code
                status = status_for(error, request_id)
                await context.abort(status.code, status.details, status.trailing_metadata)
            except grpc.aio.AbortError:
                code = context.code().name if context.code() else "UNKNOWN"
                raise
            except (asyncio.CancelledError, GeneratorExit):
                code = "CANCELLED"
                raise
            except Exception:
                code = "INTERNAL"
                log.exception("rpc_failed")
                status = internal_status(request_id)
                await context.abort(status.code, status.details, status.trailing_metadata)
            finally:
                elapsed = time.perf_counter() - started
                self._metrics.requests.labels(method, code).inc()
                self._metrics.latency.labels(method).observe(elapsed)
                log.info("rpc", code=code, duration_ms=round(elapsed * 1000, 3))
                structlog.contextvars.unbind_contextvars("request_id", "rpc")

        return scope


class AuthInterceptor(ScopedInterceptor):
    """Verifies the bearer token and the caller's role for every mleb RPC.

    `rpc_roles` maps full method names ("/pkg.Service/Method") to allowed roles; a method
    missing from it is refused, so a new RPC is closed until someone declares its roles.
    """

    def __init__(
        self,
        authority: auth.TokenAuthority | None,
        rpc_roles: Mapping[str, frozenset[auth.Role]],
        revocations: RevocationCheck | None = None,
    ) -> None:
        self._authority = authority
        self._rpc_roles = dict(rpc_roles)
        self._revocations = revocations

    def scope_for(self, method: str) -> CallScope | None:
        if method.startswith(PUBLIC_SERVICE_PREFIXES):
            return None
        roles = self._rpc_roles.get(method, frozenset())

        @asynccontextmanager
        async def scope(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            caller = self._authenticate(context)
            if caller.role not in roles:
                raise PermissionDeniedError(
                    f"role {caller.role.value!r} may not call {method}",
                    reason="ROLE_NOT_ALLOWED",
                    metadata={"role": caller.role.value, "method": method},
                )
            if self._revocations is not None and self._authority is not None:
                await self._revocations.check(caller)
            token = auth.set_current_caller(caller)
            try:
                yield
            finally:
                auth.reset_current_caller(token)

        return scope

    def _authenticate(self, context: grpc.aio.ServicerContext) -> auth.Caller:
        if self._authority is None:
            return auth.DEV_CALLER
        metadata = dict(context.invocation_metadata() or ())
        header = str(metadata.get("authorization", ""))
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError(
                "missing bearer token: send 'authorization: Bearer <token>' metadata",
                reason="NO_TOKEN",
            )
        return self._authority.verify(token.strip())
