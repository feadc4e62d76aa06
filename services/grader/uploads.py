"""Receiving a streamed submission with a hard size cap and bounded memory."""

from __future__ import annotations

import tempfile
from typing import IO

from services.common.errors import QuotaViolation, ResourceExhaustedError

DEFAULT_MAX_SUBMISSION_BYTES = 2 * 1024**3
# Submissions up to this size stay in memory; larger ones spill to a temporary file.
_SPOOL_BYTES = 64 * 1024**2


class SubmissionBuffer:
    def __init__(self, max_bytes: int = DEFAULT_MAX_SUBMISSION_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 (closed by close())

    def check_declared_size(self, declared: int) -> None:
        """Fails early when the client announces an oversize upload."""
        if declared > self.max_bytes:
            raise self._too_large(declared)

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise self._too_large(self.size)
        self._file.write(chunk)

    def file(self) -> IO[bytes]:
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SubmissionBuffer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _too_large(self, size: int) -> ResourceExhaustedError:
        return ResourceExhaustedError(
            f"submission exceeds the {self.max_bytes}-byte limit",
            reason="SUBMISSION_TOO_LARGE",
            metadata={"limit_bytes": str(self.max_bytes), "received_bytes": str(size)},
            quota=[
                QuotaViolation(
                    subject="submission_bytes",
                    description=f"at most {self.max_bytes} bytes per submission",
                )
            ],
        )
