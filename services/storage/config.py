"""Which object store a service uses, from MLEB_OBJECT_STORE and MLEB_S3_* variables.

  MLEB_OBJECT_STORE=file:///var/lib/mleb/objects   a folder (one machine, or a shared mount)
  MLEB_OBJECT_STORE=s3://bucket/optional/prefix    S3-compatible storage, through boto3
  MLEB_S3_ENDPOINT_URL    the S3 endpoint, for storage other than AWS (SeaweedFS, MinIO, Ceph)
  MLEB_S3_REGION          the signing region
  MLEB_S3_ACCESS_KEY_ID, MLEB_S3_SECRET_ACCESS_KEY
                          a key pair; without them boto3's own chain is used (AWS_* variables,
                          shared credential files, instance or pod roles)
Unset or empty, there is no store, and each service behaves as on a single machine."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from services.common.errors import InvalidArgumentError, invalid_field
from services.storage.base import ObjectStore
from services.storage.keys import check_key

MIB = 1024**2
# S3's bucket naming rules (lower case, digits, dots and hyphens, 3 to 63 characters).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
VARIABLE = "MLEB_OBJECT_STORE"


@dataclass(frozen=True)
class StoreSettings:
    url: str
    endpoint_url: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    # Objects above this go up as multipart uploads, in parts of this size.
    multipart_bytes: int = 8 * MIB

    @classmethod
    def from_env(cls) -> StoreSettings | None:
        url = os.environ.get(VARIABLE, "").strip()
        if not url:
            return None
        settings = cls(
            url=url,
            endpoint_url=os.environ.get("MLEB_S3_ENDPOINT_URL", "").strip(),
            region=os.environ.get("MLEB_S3_REGION", "").strip(),
            access_key_id=os.environ.get("MLEB_S3_ACCESS_KEY_ID", ""),
            secret_access_key=os.environ.get("MLEB_S3_SECRET_ACCESS_KEY", ""),
        )
        settings.location()  # a malformed URL fails at start-up, not at the first put
        return settings

    def location(self) -> tuple[str, str, str]:
        """(scheme, bucket or folder, prefix) of the URL, checked."""
        parts = urlsplit(self.url)
        if parts.query or parts.fragment:
            raise invalid_field(VARIABLE, "takes no query or fragment")
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
                raise invalid_field(VARIABLE, "file:///absolute/path")
            return "file", parts.path, ""
        if parts.scheme == "s3":
            if not _BUCKET.fullmatch(parts.netloc):
                raise invalid_field(VARIABLE, "s3://bucket/prefix with a valid S3 bucket name")
            prefix = parts.path.strip("/")
            if prefix:
                try:
                    check_key(prefix)
                except InvalidArgumentError as exc:
                    raise invalid_field(VARIABLE, f"the prefix: {exc}") from None
            return "s3", parts.netloc, prefix
        raise invalid_field(VARIABLE, "file:///path or s3://bucket/prefix")


def open_store(settings: StoreSettings) -> ObjectStore:
    scheme, where, prefix = settings.location()
    if scheme == "file":
        from services.storage.local import LocalStore

        return LocalStore(Path(where))
    return _s3_store(settings, where, prefix)


def _s3_store(settings: StoreSettings, bucket: str, prefix: str) -> ObjectStore:
    try:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config
    except ImportError:
        raise invalid_field(
            VARIABLE, "s3:// needs boto3: install the server with its s3 extra"
        ) from None
    from services.storage.s3 import S3Store

    credentials = {}
    if settings.access_key_id or settings.secret_access_key:
        credentials = {
            "aws_access_key_id": settings.access_key_id,
            "aws_secret_access_key": settings.secret_access_key,
        }
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        region_name=settings.region or None,
        config=Config(
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=10,
            read_timeout=60,
            s3={"addressing_style": "path"} if settings.endpoint_url else None,
        ),
        **credentials,
    )
    transfer = TransferConfig(
        multipart_threshold=settings.multipart_bytes, multipart_chunksize=settings.multipart_bytes
    )
    return S3Store(client, bucket, prefix, transfer)
