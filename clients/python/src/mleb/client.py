"""Typed mleb clients: `Client` (blocking) and `AsyncClient` (asyncio).

Both share one definition of every call; they differ only in how a call is awaited. Every
call has a deadline (the client's `timeout` unless given), idempotent calls are retried on
UNAVAILABLE with backoff by gRPC itself, and failures raise `mleb.errors.MlebError`
subclasses decoded from the server's status details.

    client = Client(grader="10.0.0.1:50052,10.0.0.2:50052", token=os.environ["MLEB_TOKEN"])
    reply = client.validate_submission("spaceship-titanic", "submission.csv")
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from mleb.channels import async_channel, sync_channel
from mleb.common.v1 import common_pb2
from mleb.errors import from_rpc_error
from mleb.grader.v1 import grader_service_pb2 as grader_pb
from mleb.grader.v1 import grader_service_pb2_grpc as grader_grpc
from mleb.registry.v1 import registry_pb2
from mleb.registry.v1 import registry_service_pb2 as registry_pb
from mleb.registry.v1 import registry_service_pb2_grpc as registry_grpc
from mleb.sandbox.v1 import sandbox_pb2
from mleb.sandbox.v1 import sandbox_service_pb2 as sandbox_pb
from mleb.sandbox.v1 import sandbox_service_pb2_grpc as sandbox_grpc

DEFAULT_TIMEOUT_S = 30.0
# Pass as `timeout` for a call with no deadline, such as following a long run's logs.
NO_DEADLINE = float("inf")
_CHUNK = 1024 * 1024
_DEFAULT_ADDRESSES = {"registry": "127.0.0.1:50051", "grader": "127.0.0.1:50052",
                      "sandbox": "127.0.0.1:50053"}  # fmt: skip

Submission = bytes | str | Path
# The GraderService calls that stream a submission.
_UPLOADS = ("ValidateSubmission", "ScoreSubmission", "GradeSubmission")


def submission_requests(kind: Any, competition_id: str, submission: Submission, path: str = ""):
    """The header, then the submission in chunks; a str or Path is read from disk lazily."""
    if isinstance(submission, bytes):
        size = len(submission)
        chunks: Iterable[bytes] = (
            submission[i : i + _CHUNK] for i in range(0, len(submission), _CHUNK)
        )
    else:
        file = Path(submission)
        size, chunks = file.stat().st_size, _read_chunks(file)
        path = path or str(submission)
    header = grader_pb.SubmissionHeader(
        competition_id=competition_id, submission_path=path, size_bytes=size
    )
    yield kind(header=header)
    for chunk in chunks:
        yield kind(chunk=chunk)


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


class _Calls:
    """Every mleb call, defined once; subclasses decide how a call is made."""

    def __init__(
        self,
        *,
        registry: str | Sequence[str] | None = None,
        grader: str | Sequence[str] | None = None,
        sandbox: str | Sequence[str] | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        tls_ca: bytes | None = None,
        channel_factory: Callable[..., Any],
    ) -> None:
        token = os.environ.get("MLEB_TOKEN", "") if token is None else token
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        given = {"registry": registry, "grader": grader, "sandbox": sandbox}
        self._addresses = {
            name: address or os.environ.get(f"MLEB_{name.upper()}_ADDR") or _DEFAULT_ADDRESSES[name]
            for name, address in given.items()
        }
        self._tls_ca = tls_ca
        self._channels = {
            name: channel_factory(address, tls_ca) for name, address in self._addresses.items()
        }
        self.registry = registry_grpc.RegistryServiceStub(self._channels["registry"])
        self.grader = grader_grpc.GraderServiceStub(self._channels["grader"])
        self.sandbox = sandbox_grpc.SandboxServiceStub(self._channels["sandbox"])

    def _deadline(self, timeout: float | None) -> float | None:
        if timeout is None:
            return self.timeout
        return None if timeout == NO_DEADLINE else timeout

    def _call(self, method: Callable, request: Any, timeout: float | None) -> Any:
        raise NotImplementedError

    def _stream(self, method: Callable, request: Any, timeout: float | None) -> Any:
        raise NotImplementedError

    def _upload(self, method: Callable, requests: Iterator, timeout: float | None) -> Any:
        """A GraderService call that streams a submission."""
        return self._call(method, requests, timeout)

    # Registry.
    def list_competitions(self, *, split: str = "", category: str = "",
                          complexity: registry_pb2.Complexity = registry_pb2.COMPLEXITY_UNSPECIFIED,
                          page_size: int = 0, page_token: str = "", full: bool = False,
                          timeout: float | None = None):  # fmt: skip
        view = registry_pb2.COMPETITION_VIEW_FULL if full else registry_pb2.COMPETITION_VIEW_BASIC
        request = registry_pb.ListCompetitionsRequest(
            split=split, category=category, complexity=complexity, page_size=page_size,
            page_token=page_token, view=view,
        )  # fmt: skip
        return self._call(self.registry.ListCompetitions, request, timeout)

    def get_competition(self, competition_id: str, *, obfuscated: bool = False,
                        omit_public_files: bool = False,
                        timeout: float | None = None):  # fmt: skip
        """With `omit_public_files` the reply leaves the file list out (a competition with
        hundreds of thousands of files needs it): page it with `list_public_files`."""
        request = registry_pb.GetCompetitionRequest(
            competition_id=competition_id,
            description_variant=common_pb2.DESCRIPTION_VARIANT_OBFUSCATED
            if obfuscated
            else common_pb2.DESCRIPTION_VARIANT_PLAIN,
            omit_public_files=omit_public_files,
        )
        return self._call(self.registry.GetCompetition, request, timeout)

    def list_public_files(self, competition_id: str, *, page_size: int = 0,
                          page_token: str = "", timeout: float | None = None):  # fmt: skip
        """One page of the public files, in path order; `mleb.public_listing` checks the
        whole listing against the page's `public_listing_digest`."""
        request = registry_pb.ListPublicFilesRequest(
            competition_id=competition_id, page_size=page_size, page_token=page_token
        )
        return self._call(self.registry.ListPublicFiles, request, timeout)

    def get_leaderboard(self, competition_id: str, *, timeout: float | None = None):
        request = registry_pb.GetLeaderboardRequest(competition_id=competition_id)
        return self._call(self.registry.GetLeaderboard, request, timeout)

    def list_splits(self, *, timeout: float | None = None):
        return self._call(self.registry.ListSplits, registry_pb.ListSplitsRequest(), timeout)

    def download_public_data(self, competition_id: str, paths: Sequence[str] = (), *,
                             timeout: float | None = None):  # fmt: skip
        """Chunks of each public file (path, size, sha256, offset, data, last_chunk)."""
        request = registry_pb.DownloadPublicDataRequest(
            competition_id=competition_id, paths=list(paths)
        )
        return self._stream(self.registry.DownloadPublicData, request, timeout)

    def revoke_token(self, *, token: str = "", token_id: str = "", sandbox_id: str = "",
                     expires_at: datetime | None = None, reason: str = "",
                     timeout: float | None = None):  # fmt: skip
        """Revokes one target: a token (a lab may revoke its own), or, with the service role, a
        token id or every token of a sandbox. Revoking again is harmless."""
        targets = {"token": token, "token_id": token_id, "sandbox_id": sandbox_id}
        given = {name: value for name, value in targets.items() if value}
        if len(given) != 1:
            raise ValueError("name exactly one of token, token_id or sandbox_id")
        request = registry_pb.RevokeTokenRequest(reason=reason, **given)
        if expires_at is not None:
            request.expires_at.FromDatetime(expires_at)
        return self._call(self.registry.RevokeToken, request, timeout)

    # Grader.
    def validate_submission(self, competition_id: str, submission: Submission, *,
                            timeout: float | None = None):  # fmt: skip
        requests = submission_requests(
            grader_pb.ValidateSubmissionRequest, competition_id, submission
        )
        return self._upload(self.grader.ValidateSubmission, requests, timeout)

    def score_submission(self, competition_id: str, submission: Submission, *,
                         timeout: float | None = None):  # fmt: skip
        requests = submission_requests(grader_pb.ScoreSubmissionRequest, competition_id, submission)
        return self._upload(self.grader.ScoreSubmission, requests, timeout)

    def grade_submission(self, competition_id: str, submission: Submission, *,
                         submission_path: str = "", timeout: float | None = None):  # fmt: skip
        requests = submission_requests(
            grader_pb.GradeSubmissionRequest, competition_id, submission, submission_path
        )
        return self._upload(self.grader.GradeSubmission, requests, timeout)

    def rank_score(self, competition_id: str, score: float | None, *,
                   timeout: float | None = None):  # fmt: skip
        request = grader_pb.RankScoreRequest(competition_id=competition_id)
        if score is not None:
            request.score = score
        return self._call(self.grader.RankScore, request, timeout)

    # Sandbox.
    def create_sandbox(self, request: sandbox_pb.CreateSandboxRequest, *,
                       timeout: float | None = None):  # fmt: skip
        """Not retried automatically; with an idempotency key a retry is always safe."""
        return self._call(self.sandbox.CreateSandbox, request, timeout)

    def get_sandbox(self, sandbox_id: str, *, timeout: float | None = None):
        request = sandbox_pb.GetSandboxRequest(sandbox_id=sandbox_id)
        return self._call(self.sandbox.GetSandbox, request, timeout)

    def list_sandboxes(self, request: sandbox_pb.ListSandboxesRequest | None = None, *,
                       timeout: float | None = None):  # fmt: skip
        request = request or sandbox_pb.ListSandboxesRequest()
        return self._call(self.sandbox.ListSandboxes, request, timeout)

    def stop_sandbox(self, sandbox_id: str, *, reason: str = "", timeout: float | None = None):
        request = sandbox_pb.StopSandboxRequest(sandbox_id=sandbox_id, reason=reason)
        return self._call(self.sandbox.StopSandbox, request, timeout)

    def stream_logs(self, sandbox_id: str, *, after_seq: int = 0, follow: bool = False,
                    timeout: float | None = None):  # fmt: skip
        """Batches of log entries; `follow` streams until the sandbox has ended."""
        request = sandbox_pb.StreamLogsRequest(
            sandbox_id=sandbox_id, after_seq=after_seq, follow=follow
        )
        return self._stream(self.sandbox.StreamLogs, request, timeout)

    def download_artifacts(self, sandbox_id: str, *, timeout: float | None = None):
        request = sandbox_pb.DownloadArtifactsRequest(sandbox_id=sandbox_id)
        return self._stream(self.sandbox.DownloadArtifacts, request, timeout)

    def list_gpus(self, *, timeout: float | None = None):
        return self._call(self.sandbox.ListGpus, sandbox_pb.ListGpusRequest(), timeout)

    # Evidence.

    def export_audit_chain(self, from_seq: int, to_seq: int = 0, *,
                           timeout: float | None = None):  # fmt: skip
        """One page of the audit chain; follow `next_from_seq` for the rest."""
        request = registry_pb.ExportAuditChainRequest(from_seq=from_seq, to_seq=to_seq)
        return self._call(self.registry.ExportAuditChain, request, timeout)

    def list_grader_keys(self, *, timeout: float | None = None):
        request = grader_pb.ListPublicKeysRequest()
        return self._call(self.grader.ListPublicKeys, request, timeout)

    def list_sandbox_keys(self, *, timeout: float | None = None):
        request = sandbox_pb.ListPublicKeysRequest()
        return self._call(self.sandbox.ListPublicKeys, request, timeout)


class Client(_Calls):
    """Blocking client. Close it (or use `with`) to release its channels."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(channel_factory=sync_channel, **kwargs)

    def _call(self, method, request, timeout):
        try:
            return method(request, metadata=self._metadata, timeout=self._deadline(timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def _stream(self, method, request, timeout) -> Iterator:
        try:
            yield from method(request, metadata=self._metadata, timeout=self._deadline(timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_Calls):
    """asyncio client: await each call; iterate streams with `async for`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(channel_factory=async_channel, **kwargs)
        self._upload_channel: grpc.Channel | None = None

    async def _call(self, method, request, timeout):
        try:
            return await method(request, metadata=self._metadata, timeout=self._deadline(timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def _stream(self, method, request, timeout) -> AsyncIterator:
        try:
            async for item in method(
                request, metadata=self._metadata, timeout=self._deadline(timeout)
            ):
                yield item
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def _upload(self, method, requests, timeout):
        # grpc.aio replaces the server's status with INTERNAL when the server ends an upload
        # while a chunk is still being written (grpc/grpc#36066), and the grader refuses from
        # the header, mid-body, on purpose. gRPC's blocking API keeps the server's status, so
        # uploads use it, on its own threads, and this coroutine only waits for the result.
        if self._upload_channel is None:
            self._upload_channel = sync_channel(self._addresses["grader"], self._tls_ca)
        rpc = next(name for name in _UPLOADS if getattr(self.grader, name) is method)
        blocking = getattr(grader_grpc.GraderServiceStub(self._upload_channel), rpc)
        call = blocking.future(requests, metadata=self._metadata, timeout=self._deadline(timeout))
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        call.add_done_callback(lambda _: loop.call_soon_threadsafe(_settle, finished))
        try:
            await finished
        except asyncio.CancelledError:
            call.cancel()
            raise
        try:
            return call.result()
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        if self._upload_channel is not None:
            self._upload_channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _settle(finished: asyncio.Future) -> None:
    if not finished.done():
        finished.set_result(None)


__all__ = ["NO_DEADLINE", "AsyncClient", "Client", "sandbox_pb", "sandbox_pb2"]
