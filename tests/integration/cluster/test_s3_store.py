"""services/storage/s3.py against a real S3 server (scripts/dev_s3.sh's SeaweedFS)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from services.common.errors import (
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)
from services.storage.base import ObjectStore
from services.storage.config import MIB, StoreSettings, open_store
from services.storage.s3 import SHA256_METADATA, SIZE_METADATA
from tests.fixtures.dev_clusters import DevCluster
from tests.fixtures.object_stores import (
    new_bucket,
    read_object,
    s3_client,
    s3_settings,
    source_file,
)

PREFIX = "deploy/one"


def store_settings(cluster: DevCluster, bucket: str, **override: Any) -> StoreSettings:
    return s3_settings(cluster, f"s3://{bucket}/{PREFIX}", **override)


@pytest.fixture
def bucket(s3_cluster: DevCluster) -> str:
    return new_bucket(s3_cluster)


@pytest.fixture
def store(s3_cluster: DevCluster, bucket: str) -> ObjectStore:
    return open_store(store_settings(s3_cluster, bucket))


def names(cluster: DevCluster, bucket: str) -> list[str]:
    listed = s3_client(cluster).list_objects_v2(Bucket=bucket).get("Contents", [])
    return [item["Key"] for item in listed]


def test_round_trip_under_the_prefix(
    s3_cluster: DevCluster, bucket: str, store: ObjectStore, tmp_path: Path
) -> None:
    info = store.put_file("sandboxes/s1/artifacts.tar", source_file(tmp_path, b"hello"))
    assert (info.size_bytes, len(info.sha256)) == (5, 64)
    assert read_object(store, "sandboxes/s1/artifacts.tar") == b"hello"
    assert names(s3_cluster, bucket) == [f"{PREFIX}/sandboxes/s1/artifacts.tar"]
    head = s3_client(s3_cluster).head_object(
        Bucket=bucket, Key=f"{PREFIX}/sandboxes/s1/artifacts.tar"
    )
    assert head["Metadata"] == {SHA256_METADATA: info.sha256, SIZE_METADATA: "5"}
    store.delete("sandboxes/s1/artifacts.tar")
    store.delete("sandboxes/s1/artifacts.tar")
    assert names(s3_cluster, bucket) == []


def test_a_big_object_goes_up_in_parts(
    s3_cluster: DevCluster, bucket: str, store: ObjectStore, tmp_path: Path
) -> None:
    data = os.urandom(20 * MIB + 3)
    info = store.put_file("big.bin", source_file(tmp_path, data))
    head = s3_client(s3_cluster).head_object(Bucket=bucket, Key=f"{PREFIX}/big.bin")
    # A multipart object's ETag ends in "-<parts>": 8 + 8 + 4 MiB.
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == len(data) == info.size_bytes
    assert read_object(store, "big.bin") == data


def test_a_missing_key_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError) as raised:
        store.open("nothing/here")
    assert raised.value.reason == "OBJECT_NOT_FOUND"


def test_a_missing_bucket_is_never_an_internal_error(s3_cluster: DevCluster) -> None:
    # SeaweedFS creates a bucket on an admin's first put, so only a read can miss one.
    store = open_store(store_settings(s3_cluster, f"mleb-missing-{uuid.uuid4().hex[:8]}"))
    with pytest.raises((FailedPreconditionError, NotFoundError)) as raised:
        store.open("x")
    assert raised.value.reason in {"OBJECT_STORE_NO_BUCKET", "OBJECT_NOT_FOUND"}


def test_a_wrong_secret_is_refused_without_naming_it(
    s3_cluster: DevCluster, bucket: str, store: ObjectStore, tmp_path: Path
) -> None:
    store.put_file("kept", source_file(tmp_path, b"kept"))
    secret = "wrong-" + uuid.uuid4().hex
    wrong = open_store(store_settings(s3_cluster, bucket, secret_access_key=secret))
    for call in (
        lambda: wrong.put_file("new", source_file(tmp_path, b"new")),
        lambda: wrong.open("kept"),
        lambda: wrong.delete("kept"),
    ):
        with pytest.raises(FailedPreconditionError) as raised:
            call()
        assert raised.value.reason == "OBJECT_STORE_REFUSED"
        message = str(raised.value)
        assert secret not in message
        assert s3_cluster.exports["MLEB_S3_SECRET_ACCESS_KEY"] not in message
        assert s3_cluster.exports["MLEB_S3_ENDPOINT_URL"] not in message
    assert names(s3_cluster, bucket) == [f"{PREFIX}/kept"]


def test_an_unreachable_endpoint_is_unavailable(tmp_path: Path) -> None:
    import socket

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    store = open_store(
        StoreSettings(
            url="s3://mleb-nowhere",
            endpoint_url=f"http://127.0.0.1:{port}",
            region="us-east-1",
            access_key_id="a",
            secret_access_key="b",
        )
    )
    with pytest.raises(UnavailableError) as raised:
        store.open("x")
    assert raised.value.reason == "OBJECT_STORE_UNAVAILABLE"
    assert str(port) not in str(raised.value)


def test_an_object_changed_behind_the_store_is_detected(
    s3_cluster: DevCluster, bucket: str, store: ObjectStore, tmp_path: Path
) -> None:
    data = os.urandom(3 * MIB)
    info = store.put_file("victim", source_file(tmp_path, data))
    client = s3_client(s3_cluster)
    name = f"{PREFIX}/victim"
    forged = bytearray(data)
    forged[MIB + 7] ^= 1
    # The same length and the same recorded digest: only the bytes differ.
    client.put_object(
        Bucket=bucket,
        Key=name,
        Body=bytes(forged),
        Metadata={SHA256_METADATA: info.sha256, SIZE_METADATA: str(info.size_bytes)},
    )
    received = bytearray()
    with pytest.raises(DataLossError) as raised:
        for chunk in store.open("victim").chunks():
            received += chunk
    assert raised.value.reason == "OBJECT_CORRUPT"
    assert len(received) < len(data)  # the corrupted object never arrives whole
    # An object put without our record, or with another length, fails the same way.
    client.put_object(Bucket=bucket, Key=name, Body=data)
    with pytest.raises(DataLossError):
        read_object(store, "victim")
    client.put_object(
        Bucket=bucket, Key=name, Body=data + b"x", Metadata={SHA256_METADATA: info.sha256,
        SIZE_METADATA: str(info.size_bytes)}
    )  # fmt: skip
    with pytest.raises(DataLossError):
        read_object(store, "victim")


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a\\b", "a\x00b", "k" * 600, ""])
def test_odd_keys_are_refused_before_any_request(
    s3_cluster: DevCluster, bucket: str, store: ObjectStore, tmp_path: Path, key: str
) -> None:
    for call in (
        lambda: store.put_file(key, source_file(tmp_path, b"x")),
        lambda: store.open(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(InvalidArgumentError):
            call()
    assert names(s3_cluster, bucket) == []
