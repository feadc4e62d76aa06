"""Wraps any of gRPC's four handler shapes with one piece of per-call logic."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

# Given the call's context, returns an async context manager that surrounds the call:
# it may raise to refuse the call, and sees any exception the call raises.
CallScope = Callable[[grpc.aio.ServicerContext], AbstractAsyncContextManager[Any]]


async def _drain(result: Any, context: grpc.aio.ServicerContext) -> None:
    """Streaming handlers either yield responses or write them and return a coroutine."""
    if inspect.isasyncgen(result):
        async for item in result:
            await context.write(item)
    else:
        await result


def _no_scope(_context: grpc.aio.ServicerContext) -> AbstractAsyncContextManager[Any]:
    return contextlib.nullcontext()


def wrap_handler(
    handler: grpc.RpcMethodHandler,
    scope: CallScope = _no_scope,
    *,
    accept: Callable[[Any], Any] | None = None,
    deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """`scope` surrounds the call; `accept` sees each request before the handler does and
    may refuse it by raising; `deserializer` replaces the handler's own."""
    deserialize = deserializer or handler.request_deserializer
    serialize = handler.response_serializer

    def one(request: Any) -> Any:
        return accept(request) if accept else request

    async def each(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            yield one(request)

    def many(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        return each(requests) if accept else requests

    if handler.unary_unary:
        inner_uu = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with scope(context):
                return await inner_uu(one(request), context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, deserialize, serialize)
    if handler.unary_stream:
        inner_us = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> None:
            async with scope(context):
                await _drain(inner_us(one(request), context), context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, deserialize, serialize)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        async def stream_unary(requests: AsyncIterator, context: grpc.aio.ServicerContext) -> Any:
            async with scope(context):
                return await inner_su(many(requests), context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, deserialize, serialize)
    inner_ss = handler.stream_stream

    async def stream_stream(requests: AsyncIterator, context: grpc.aio.ServicerContext) -> None:
        async with scope(context):
            await _drain(inner_ss(many(requests), context), context)

    return grpc.stream_stream_rpc_method_handler(stream_stream, deserialize, serialize)


class ScopedInterceptor(grpc.aio.ServerInterceptor):
    """An interceptor defined by a per-call scope; `scope_for` returns None to pass through."""

    def scope_for(self, method: str) -> CallScope | None:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        scope = self.scope_for(handler_call_details.method)
        if handler is None or scope is None:
            return handler
        return wrap_handler(handler, scope)
