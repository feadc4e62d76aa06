"""Domain errors. Cores raise these; one interceptor turns them into google.rpc.Status.

Cores never import grpc, so each error names its status code as a string that the
interceptor maps (see services.common.error_interceptor).
"""

from __future__ import annotations

from dataclasses import dataclass


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
    "invalid_field",
    "shown",
]
