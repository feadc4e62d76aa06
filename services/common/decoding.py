"""Requests that do not decode, or hold a string outside its limit, answer INVALID_ARGUMENT,
on every service alike.

gRPC decodes a request before any handler runs. When the bytes are not a message of the
method's type, or a string field is not UTF-8, grpc.aio answers UNKNOWN with the exception's
class name (unary requests), or the handler meets the error mid-stream and it turns into
INTERNAL. This interceptor, the innermost, gives each handler a deserializer that never
raises: an undecodable request becomes a marker, and the handler refuses the marker with a
domain error that the request interceptor maps like any other. Each decoded message then
passes the string limits of services.common.field_limits before its handler sees it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from services.common.errors import InvalidArgumentError
from services.common.field_limits import check_request
from services.common.rpc_handlers import wrap_handler


class _Undecodable:
    """Stands in for a request whose bytes did not decode."""

    __slots__ = ()


UNDECODABLE = _Undecodable()


def undecodable_error() -> InvalidArgumentError:
    return InvalidArgumentError(
        "the request could not be decoded: it is not a protobuf message of this method's "
        "request type, or a string field is not valid UTF-8",
        reason="UNDECODABLE_REQUEST",
    )


def _never_raising(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:  # DecodeError, UnicodeDecodeError, whatever the runtime raises
            return UNDECODABLE

    return deserialize


def _checked(request: Any) -> Any:
    if request is UNDECODABLE:
        raise undecodable_error()
    check_request(request)
    return request


class DecodeInterceptor(grpc.aio.ServerInterceptor):
    """Must be the last interceptor, so its refusals pass through the request interceptor."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        deserializer = _never_raising(handler.request_deserializer)
        return wrap_handler(handler, accept=_checked, deserializer=deserializer)
