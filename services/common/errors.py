"""Domain errors. Cores raise these; one interceptor turns them into google.rpc.Status.

Cores never import grpc, so each error names its status code as a string that the
interceptor maps (see services.common.interceptors). A peer service's refusal becomes one of
these through `from_peer`, the servers' one translation of gRPC errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from mleb.errors import from_rpc_error


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class MlebError(Exception):
    """Base of all errors a caller can cause; carries a gRPC status code name."""

    code = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        violations: list[FieldViolation] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # ErrorInfo.reason: a stable UPPER_SNAKE identifier clients can switch on.
        self.reason = reason or type(self).__name__.removesuffix("Error").upper()
        self.metadata = dict(metadata or {})
        self.violations = list(violations or [])


class InvalidArgumentError(MlebError):
    code = "INVALID_ARGUMENT"


class NotFoundError(MlebError):
    code = "NOT_FOUND"


class AlreadyExistsError(MlebError):
    code = "ALREADY_EXISTS"


class FailedPreconditionError(MlebError):
    code = "FAILED_PRECONDITION"


class PermissionDeniedError(MlebError):
    code = "PERMISSION_DENIED"


class UnauthenticatedError(MlebError):
    code = "UNAUTHENTICATED"


class UnavailableError(MlebError):
    code = "UNAVAILABLE"


class DataLossError(MlebError):
    """Stored bytes no longer match what was recorded when they were stored."""

    code = "DATA_LOSS"


@dataclass
class QuotaViolation:
    subject: str
    description: str


class ResourceExhaustedError(MlebError):
    code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, quota: list[QuotaViolation] | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.quota = list(quota or [])


# Longest prefix of an offending value quoted back in an error.
ECHO_CHARS = 48


def shown(value: str) -> str:
    """A value quoted back to the caller: repr'd (control and format characters escaped)
    and cut short, since error details travel in size-limited metadata."""
    return repr(value) if len(value) <= ECHO_CHARS else f"{value[:ECHO_CHARS]!r}…"


def invalid_field(field_name: str, description: str, *, reason: str = "") -> InvalidArgumentError:
    """An INVALID_ARGUMENT naming one bad request field."""
    return InvalidArgumentError(
        f"{field_name}: {description}",
        reason=reason or "INVALID_FIELD",
        violations=[FieldViolation(field_name, description)],
    )


# What a peer service's refusal is to this service's caller. Anything else (UNAVAILABLE,
# DEADLINE_EXCEEDED, INTERNAL, UNAUTHENTICATED of our own credentials...) means the peer
# could not serve us: UNAVAILABLE, naming it.
_PASSED_ON: dict[str, type[MlebError]] = {
    "INVALID_ARGUMENT": InvalidArgumentError,
    "NOT_FOUND": NotFoundError,
    "FAILED_PRECONDITION": FailedPreconditionError,
    "PERMISSION_DENIED": PermissionDeniedError,
}


def from_peer(
    error: grpc.RpcError,
    peer: str,
    *,
    reasons: Mapping[str, str] | None = None,
    explain: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> MlebError:
    """A failed call to another mleb service, as this service's own domain error: the one
    translation servers use (the status is decoded by the client package's from_rpc_error).
    `reasons` renames the peer's reason, by status code, where our callers know it by
    another; `explain` puts what it means for them before the peer's message; `metadata` is
    added to what the peer sent."""
    decoded = from_rpc_error(error)
    kind = _PASSED_ON.get(decoded.code.name)
    meta = {k: v for k, v in decoded.metadata.items() if k != "request_id"}
    meta.update(metadata or {})
    if kind is None:
        return UnavailableError(
            f"{peer} unavailable: {decoded.code.name}",
            reason=f"{peer.upper()}_UNAVAILABLE",
            metadata=meta,
        )
    meaning = (explain or {}).get(decoded.code.name)
    return kind(
        f"{meaning} ({decoded.message})" if meaning else decoded.message,
        reason=(reasons or {}).get(decoded.code.name, decoded.reason),
        metadata=meta,
        violations=[FieldViolation(v.field, v.description) for v in decoded.field_violations],
    )


__all__ = [
    "AlreadyExistsError",
    "FailedPreconditionError",
    "FieldViolation",
    "InvalidArgumentError",
    "MlebError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaViolation",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_peer",
    "invalid_field",
    "shown",
]
