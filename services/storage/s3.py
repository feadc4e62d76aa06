"""S3-compatible object storage through boto3 (imported only when configured).

Uploads go through s3transfer's manager, which splits big objects into a multipart upload
(TransferConfig); the sha256 is computed first and sent as the object's metadata, so it is
recorded with the object in one request. Reads stream the body and check it (base.verified).
Every refusal becomes an MlebError that names the key, never the endpoint or a credential."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from services.common.errors import FailedPreconditionError, MlebError, UnavailableError
from services.storage.base import CHUNK_BYTES, ObjectInfo, StoredObject, file_digest, not_found
from services.storage.keys import check_key

log = structlog.get_logger("mleb.storage")

SHA256_METADATA = "sha256"
SIZE_METADATA = "size-bytes"
_MISSING = {"NoSuchKey", "404", "NotFound"}
_REFUSED = {
    "AccessDenied",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidToken",
    "ExpiredToken",
    "403",
}


def _translated(key: str, exc: Exception) -> MlebError:
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            return not_found(key)
        log.warning("object_store_refused", key=key, code=code)
        if code in _REFUSED:
            return FailedPreconditionError(
                "the object store refused the sandbox service's credentials",
                reason="OBJECT_STORE_REFUSED",
            )
        if code == "NoSuchBucket":
            return FailedPreconditionError(
                "the object store's bucket does not exist", reason="OBJECT_STORE_NO_BUCKET"
            )
        return UnavailableError(f"the object store failed ({code})", reason="OBJECT_STORE_FAILED")
    if isinstance(exc, NoCredentialsError):
        return FailedPreconditionError(
            "no credentials for the object store are configured", reason="OBJECT_STORE_REFUSED"
        )
    log.warning("object_store_unreachable", key=key, error=type(exc).__name__)
    return UnavailableError("the object store did not answer", reason="OBJECT_STORE_UNAVAILABLE")


@contextlib.contextmanager
def _mapped(key: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise _translated(key, exc) from None


class S3Store:
    def __init__(self, client: Any, bucket: str, prefix: str, transfer: Any) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._transfer = transfer  # boto3.s3.transfer.TransferConfig

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        from boto3.s3.transfer import create_transfer_manager

        name = self._name(key)
        sha256, size = file_digest(path)
        with _mapped(key), create_transfer_manager(self._client, self._transfer) as manager:
            manager.upload(
                str(path),
                self._bucket,
                name,
                extra_args={"Metadata": {SHA256_METADATA: sha256, SIZE_METADATA: str(size)}},
            ).result()
        return ObjectInfo(key, size, sha256)

    def open(self, key: str) -> StoredObject:
        name = self._name(key)
        with _mapped(key):
            reply = self._client.get_object(Bucket=self._bucket, Key=name)
        body = reply["Body"]
        metadata = reply.get("Metadata", {})
        # An object without our record (put by something else) fails verification.
        size = metadata.get(SIZE_METADATA, "")
        info = ObjectInfo(
            key,
            int(size) if size.isdigit() else -1,
            metadata.get(SHA256_METADATA, ""),
        )
        return StoredObject(info, self._streamed(key, body), body.close)

    @staticmethod
    def _streamed(key: str, body: Any) -> Iterator[bytes]:
        with _mapped(key):
            yield from body.iter_chunks(CHUNK_BYTES)

    def delete(self, key: str) -> None:
        name = self._name(key)
        with _mapped(key):
            self._client.delete_object(Bucket=self._bucket, Key=name)
