"""Host-side endpoints of each sandbox, served on Unix sockets in its sockets directory.

The sidecar forwards the agent's loopback ports to these sockets, and they are the only
things a sandbox can reach:

- validate-http.sock: MLE-bench's `POST /validate` (and `GET /health`), backed by
  GraderService.ValidateSubmission with the sandbox's token;
- grader.sock: a byte relay to the grader, for agents speaking gRPC themselves (the grader
  authorises the sandbox token: ValidateSubmission, own competition only);
- egress-proxy.sock (allowlist mode): the allowlist HTTP proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import jwt
import structlog
from aiohttp import web
from mleb.errors import from_rpc_error
from mleb.grader.v1 import grader_service_pb2, grader_service_pb2_grpc

from services.common.channels import bearer_metadata, service_channel
from services.common.errors import invalid_field
from services.common.settings import Settings
from services.sandbox.backends.base import NetworkMode
from services.sandbox.node.egress_log import EgressRecorder
from services.sandbox.node.egress_proxy import (
    AddressPolicy,
    EgressProxy,
    parse_allowlist,
    split_host_port,
)
from services.sandbox.node.relay import bind_unix_socket, relay

log = structlog.get_logger("mleb.sandbox.endpoints")

VALIDATE_SOCKET = "validate-http.sock"
GRADER_SOCKET = "grader.sock"
EGRESS_SOCKET = "egress-proxy.sock"

_UPLOAD_CHUNK = 1 << 20
# What multipart framing may add to a file of the largest allowed size (boundaries, headers).
_MULTIPART_SLACK = 64 * 1024
# Grading a large submission can take a while; an agent waiting longer has its own timeout.
_VALIDATE_TIMEOUT_S = 600.0

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def token_competition(sandbox_token: str) -> str:
    """The competition a sandbox token is for; the grader verifies the token itself."""
    try:
        claims = jwt.decode(sandbox_token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise invalid_field("sandbox_token", "not a token") from exc
    competition = str(claims.get("comp", ""))
    if not competition:
        raise invalid_field("sandbox_token", "not a sandbox token (no competition)")
    return competition


@dataclass
class _OpenSandbox:
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    runner: web.AppRunner | None = None
    connections: set[asyncio.StreamWriter] = field(default_factory=set)
    paths: list[Path] = field(default_factory=list)
    handlers: set[asyncio.Task] = field(default_factory=set)
    proxy: EgressProxy | None = None


class SandboxEndpoints:
    def __init__(
        self,
        grader_addr: str,
        settings: Settings,
        egress_policy: AddressPolicy | None = None,
        egress_log: EgressRecorder | None = None,
    ) -> None:
        self._grader_addr = grader_addr
        self._settings = settings
        # Default: no loopback, private, link-local or host address is reachable.
        self._egress_policy = egress_policy or AddressPolicy()
        self._egress_log = egress_log
        self._channel: grpc.aio.Channel | None = None
        self._open: dict[str, _OpenSandbox] = {}

    def _grader(self) -> grader_service_pb2_grpc.GraderServiceStub:
        if self._channel is None:
            self._channel = service_channel(self._grader_addr, self._settings)
        return grader_service_pb2_grpc.GraderServiceStub(self._channel)

    async def open(
        self,
        sandbox_id: str,
        sockets_dir: Path,
        sandbox_token: str,
        network: NetworkMode,
        allowed_hosts: list[str],
    ) -> None:
        """Starts the sandbox's endpoints. Idempotent: an open sandbox is reopened."""
        competition_id = token_competition(sandbox_token)
        rules = parse_allowlist(allowed_hosts) if network is NetworkMode.ALLOWLIST else []
        await self.close(sandbox_id)
        sockets_dir.mkdir(parents=True, exist_ok=True)
        # The sidecar's unprivileged user needs to traverse, never to list or write.
        sockets_dir.chmod(0o711)
        state = _OpenSandbox()
        self._open[sandbox_id] = state
        try:
            await self._serve_http(
                state, sockets_dir / VALIDATE_SOCKET, sandbox_token, competition_id
            )
            await self._serve_stream(state, sockets_dir / GRADER_SOCKET, self._relay_to_grader)
            if network is NetworkMode.ALLOWLIST:
                egress_log = self._egress_log
                state.proxy = EgressProxy(
                    sandbox_id,
                    rules,
                    self._egress_policy,
                    (lambda event: egress_log.record(sandbox_id, event)) if egress_log else None,
                )
                await self._serve_stream(state, sockets_dir / EGRESS_SOCKET, state.proxy.handle)
        except BaseException:
            await self.close(sandbox_id)
            raise

    async def close(self, sandbox_id: str) -> None:
        """Stops the sandbox's endpoints and drops its open connections. Idempotent."""
        state = self._open.pop(sandbox_id, None)
        if state is None:
            return
        for server in state.servers:
            server.close()
        for writer in list(state.connections):
            writer.close()
        if state.proxy is not None:
            state.proxy.close()
        if state.handlers:
            # Proxied connections report their bytes as they end: let them, then write the log.
            await asyncio.wait(list(state.handlers), timeout=2.0)
        if self._egress_log is not None:
            await self._egress_log.flush(sandbox_id)
        if state.runner is not None:
            await state.runner.cleanup()
        for server in state.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for path in state.paths:
            path.unlink(missing_ok=True)

    async def aclose(self) -> None:
        for sandbox_id in list(self._open):
            await self.close(sandbox_id)
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._egress_log is not None:
            await self._egress_log.aclose()

    async def _serve_stream(self, state: _OpenSandbox, path: Path, handler: StreamHandler) -> None:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            state.connections.add(writer)
            if task is not None:
                state.handlers.add(task)
            try:
                await handler(reader, writer)
            finally:
                state.connections.discard(writer)
                state.handlers.discard(task)  # type: ignore[arg-type]

        sock = bind_unix_socket(path)
        state.paths.append(path)
        state.servers.append(await asyncio.start_unix_server(tracked, sock=sock))

    async def _relay_to_grader(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, port = split_host_port(self._grader_addr)
        try:
            upstream = await asyncio.open_connection(host, port)
        except OSError:
            log.warning("grader unreachable for a sandbox", grader_addr=self._grader_addr)
            writer.close()
            return
        await relay((reader, writer), upstream)

    async def _serve_http(
        self, state: _OpenSandbox, path: Path, sandbox_token: str, competition_id: str
    ) -> None:
        app = web.Application()
        app.router.add_post("/validate", self._validate_handler(sandbox_token, competition_id))
        app.router.add_get("/health", _health)
        state.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await state.runner.setup()
        sock = bind_unix_socket(path)
        state.paths.append(path)
        await web.SockSite(state.runner, sock).start()

    def _validate_handler(self, sandbox_token: str, competition_id: str):
        ceiling = self._settings.sandbox_upload_max_bytes

        async def validate(request: web.Request) -> web.Response:
            # Refused before the body is read: the grader's cap for this competition is at
            # most the ceiling, and the grader enforces it again as the body streams.
            declared = request.content_length
            if declared is not None and declared > ceiling + _MULTIPART_SLACK:
                return _too_large(ceiling, declared)
            try:
                part = await _file_part(request)
            except ValueError as exc:
                return web.json_response({"error": "Bad request.", "details": str(exc)}, status=400)
            try:
                message = await self._validate(part, sandbox_token, competition_id, ceiling)
            except _UploadTooLarge as exc:
                return _too_large(ceiling, exc.received)
            except grpc.aio.AioRpcError as exc:
                details = f"{exc.code().name}: {exc.details()}"
                if _refused_mid_upload(exc):
                    return web.json_response(
                        {
                            "error": "Submission refused.",
                            "details": "RESOURCE_EXHAUSTED: the grader refused the upload before "
                            "reading all of it (size, rate or one-at-a-time limit)",
                        },
                        status=413,
                    )
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    status = 413 if _error_reason(exc) == "SUBMISSION_TOO_LARGE" else 429
                    return web.json_response(
                        {"error": "Submission refused.", "details": details}, status=status
                    )
                # MLE-bench's grading server answers failures this way.
                return web.json_response(
                    {"error": "An unexpected error occurred.", "details": details}, status=500
                )
            return web.json_response({"result": message})

        return validate

    async def _validate(self, part, sandbox_token: str, competition_id: str, ceiling: int) -> str:
        received = 0

        async def requests() -> AsyncIterator[grader_service_pb2.ValidateSubmissionRequest]:
            nonlocal received
            yield grader_service_pb2.ValidateSubmissionRequest(
                header=grader_service_pb2.SubmissionHeader(
                    competition_id=competition_id,
                    submission_path=part.filename or "submission.csv",
                )
            )
            while chunk := await part.read_chunk(_UPLOAD_CHUNK):
                received += len(chunk)
                if received > ceiling:
                    call.cancel()
                    return
                yield grader_service_pb2.ValidateSubmissionRequest(chunk=chunk)

        call = self._grader().ValidateSubmission(
            requests(), metadata=bearer_metadata(sandbox_token), timeout=_VALIDATE_TIMEOUT_S
        )
        try:
            reply = await call
        except asyncio.CancelledError:
            if received > ceiling:
                raise _UploadTooLarge(received) from None
            raise
        return reply.message


class _UploadTooLarge(Exception):
    def __init__(self, received: int) -> None:
        super().__init__(received)
        self.received = received


def _too_large(limit: int, received: int) -> web.Response:
    return web.json_response(
        {
            "error": "Submission refused.",
            "details": f"RESOURCE_EXHAUSTED: submission exceeds the {limit}-byte limit "
            f"({received} bytes sent)",
        },
        status=413,
    )


def _refused_mid_upload(error: grpc.aio.AioRpcError) -> bool:
    """grpc.aio reports INTERNAL, losing the grader's status, when the grader ends the call
    while a chunk is still being sent. The grader ends a call before reading the whole body
    only to refuse it."""
    return error.code() == grpc.StatusCode.INTERNAL and "SendMessageOperation" in (
        error.debug_error_string() or ""
    )


def _error_reason(error: grpc.aio.AioRpcError) -> str:
    return from_rpc_error(error).reason


async def _file_part(request: web.Request):
    """The multipart field `file`, as MLE-bench's validate_submission.sh sends it."""
    if not request.content_type.startswith("multipart/"):
        raise ValueError("send the submission as multipart/form-data with a field 'file'")
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if getattr(part, "name", None) == "file":
            return part
        await part.release()
    raise ValueError("the multipart field 'file' is missing")


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "running"})
