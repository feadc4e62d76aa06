"""Receiving a streamed submission under a hard size cap, with bounded memory.

Who may upload how much is decided from the header alone, before any chunk is read (see
`SandboxUploadPolicy` and `GraderCore.admit_upload`); the buffer then stops reading as
soon as the cap is crossed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from services.common.errors import QuotaViolation, ResourceExhaustedError

DEFAULT_MAX_SUBMISSION_BYTES = 2 * 1024**3
# Submissions up to this size stay in memory; larger ones spill to a temporary file.
_SPOOL_BYTES = 64 * 1024**2
# A sandbox's upload keeps at most this much in memory while it streams.
SANDBOX_SPOOL_BYTES = 4 * 1024**2

MIB = 1024**2
# A kept chunk's bytes object and its list slot, beyond its data (about 41 bytes).
_CHUNK_OVERHEAD = 64


@dataclass(frozen=True)
class SandboxUploadPolicy:
    """The size cap for a sandbox's validation upload.

    `size_multiple` times the competition's answers size (a submission has the answers' rows,
    give or take the width of predicted values), never below `min_bytes`, never above
    `max_bytes`, the operator's ceiling.
    """

    size_multiple: float = 8.0
    min_bytes: int = 4 * MIB
    max_bytes: int = 256 * MIB

    def cap_for(self, answers_size_bytes: int) -> int:
        wanted = max(self.min_bytes, int(self.size_multiple * answers_size_bytes))
        return min(self.max_bytes, wanted)


def too_large(
    limit: int, size: int, *, subject: str = "submission_bytes"
) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"submission exceeds the {limit}-byte limit",
        reason="SUBMISSION_TOO_LARGE",
        metadata={"limit_bytes": str(limit), "received_bytes": str(size)},
        quota=[
            QuotaViolation(subject=subject, description=f"at most {limit} bytes per submission")
        ],
    )


class InFlightValidations:
    """At most one validation in flight per sandbox, on this replica.

    Held from the header to the reply, so a sandbox cannot stack uploads (or their parses)
    and its rate limit cannot refill while one streams.
    """

    def __init__(self) -> None:
        self._held: set[str] = set()

    def __len__(self) -> int:
        return len(self._held)

    @contextlib.contextmanager
    def claim(self, sandbox_id: str) -> Iterator[None]:
        if sandbox_id in self._held:
            raise ResourceExhaustedError(
                "this sandbox already has a validation in flight; wait for its reply",
                reason="VALIDATION_IN_FLIGHT",
                metadata={"sandbox_id": sandbox_id, "max_in_flight": "1"},
                quota=[
                    QuotaViolation(
                        subject=f"sandbox:{sandbox_id}",
                        description="1 validation in flight per sandbox",
                    )
                ],
            )
        self._held.add(sandbox_id)
        try:
            yield
        finally:
            self._held.discard(sandbox_id)


def _join(chunks: list[bytes]) -> bytes:
    return b"".join(chunks)


class SubmissionBuffer:
    """An upload's body as it arrives: the chunks themselves up to `spool_bytes` (kept, not
    copied into a growing buffer), a temporary file past that.

    The digest names the submission in the audit chain and the grading statement. A body
    held in memory is hashed once, in a worker thread, while the grade runs (`sha256()`); a
    spilled one is hashed as it streams, since reading it back would cost a second pass.
    """

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_SUBMISSION_BYTES,
        *,
        spool_bytes: int = _SPOOL_BYTES,
        subject: str = "submission_bytes",
    ) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._subject = subject
        self._spool_bytes = min(spool_bytes, max_bytes)
        # What the chunks hold in memory, each one's object overhead included: a stream of
        # tiny chunks spills as early as the bytes they carry would.
        self._held = 0
        self._chunks: list[bytes] = []
        self._joining: asyncio.Future[bytes] | None = None
        self._spilled: IO[bytes] | None = None
        self._digest = hashlib.sha256()

    def check_declared_size(self, declared: int) -> None:
        """Fails early when the client announces an oversize upload."""
        if declared > self.max_bytes:
            raise self._too_large(declared)

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return  # nothing to keep, and no list entry to grow
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise self._too_large(self.size)
        self._held += len(chunk) + _CHUNK_OVERHEAD
        if self._spilled is None and self._held > self._spool_bytes:
            self._spilled = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            for held in self._chunks:
                self._spill(held)
            self._chunks = []
        if self._spilled is not None:
            self._spill(chunk)
        else:
            self._chunks.append(chunk)

    def _spill(self, chunk: bytes) -> None:
        assert self._spilled is not None
        self._spilled.write(chunk)
        self._digest.update(chunk)

    async def sha256(self) -> str:
        if self._spilled is not None:
            return self._digest.hexdigest()
        body = await self._joined()
        # hashlib releases the GIL over a large buffer: this runs beside the grade.
        return await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())

    async def file(self) -> IO[bytes]:
        if self._spilled is not None:
            self._spilled.seek(0)
            return self._spilled
        # A BytesIO shares the bytes it starts from, and a whole read() hands them back.
        return io.BytesIO(await self._joined())

    async def _joined(self) -> bytes:
        """The chunks as one bytes object, joined once for the hash and the grade alike.

        The join copies the whole body (about 30 ms at 50 MB, mostly faulting in fresh
        pages): it runs in a worker thread, so the loop keeps serving other calls. Shielded:
        a caller that gives up does not cancel it under another that still waits."""
        if self._joining is None:
            chunks, self._chunks = self._chunks, []
            self._joining = asyncio.ensure_future(asyncio.to_thread(_join, chunks))
        return await asyncio.shield(self._joining)

    def close(self) -> None:
        self._chunks = []
        if self._spilled is not None:
            self._spilled.close()

    def __enter__(self) -> SubmissionBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _too_large(self, size: int) -> ResourceExhaustedError:
        return too_large(self.max_bytes, size, subject=self._subject)
