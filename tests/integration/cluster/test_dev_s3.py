"""scripts/dev_s3.sh: SeaweedFS's S3 gateway, as boto3 and a plain HTTP client see it."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from tests.fixtures.dev_clusters import (
    DevCluster,
    alive,
    new_state_dir,
    processes_touching,
    run_script,
    start,
    stop,
)

PART = 5 * 1024 * 1024  # S3's smallest part but the last


def client(cluster: DevCluster, **override: str) -> Any:
    import boto3

    exports = cluster.exports
    settings = {
        "endpoint_url": exports["MLEB_S3_ENDPOINT_URL"],
        "aws_access_key_id": exports["MLEB_S3_ACCESS_KEY_ID"],
        "aws_secret_access_key": exports["MLEB_S3_SECRET_ACCESS_KEY"],
        "region_name": exports["MLEB_S3_REGION"],
    }
    return boto3.client("s3", **{**settings, **override})


@pytest.fixture
def bucket(s3_cluster: DevCluster) -> str:
    name = f"mleb-{uuid.uuid4().hex[:12]}"
    client(s3_cluster).create_bucket(Bucket=name)
    return name


def refusal(call: Any) -> str:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def test_start_prints_only_exports_and_again_reuses_the_server(s3_cluster: DevCluster) -> None:
    assert set(s3_cluster.exports) == {
        "MLEB_S3_ENDPOINT_URL",
        "MLEB_S3_ACCESS_KEY_ID",
        "MLEB_S3_SECRET_ACCESS_KEY",
        "MLEB_S3_REGION",
    }
    assert s3_cluster.exports["MLEB_S3_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    pid = s3_cluster.pid("weed")
    again = run_script("dev_s3.sh", "start", s3_cluster.state_dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout == s3_cluster.stdout
    assert s3_cluster.pid("weed") == pid and alive(pid)


def test_the_secret_is_readable_by_us_alone(s3_cluster: DevCluster) -> None:
    for name in ("exports", "s3.json"):
        assert (s3_cluster.state_dir / name).stat().st_mode & 0o077 == 0, name


def test_objects_round_trip(s3_cluster: DevCluster, bucket: str) -> None:
    s3 = client(s3_cluster)
    s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="dir/a.txt")["Body"].read() == b"hello"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")["Contents"]
    assert [item["Key"] for item in listed] == ["dir/a.txt"]
    assert bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_a_multipart_upload_is_assembled_in_part_order(s3_cluster: DevCluster, bucket: str) -> None:
    s3 = client(s3_cluster)
    bodies = [b"a" * PART, b"b" * PART, b"tail"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    parts = []
    # Sent out of order: the part numbers, not the arrival order, decide the object.
    for number in (3, 1, 2):
        sent = s3.upload_part(
            Bucket=bucket, Key="big", UploadId=upload, PartNumber=number, Body=bodies[number - 1]
        )
        parts.append({"ETag": sent["ETag"], "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big",
        UploadId=upload,
        MultipartUpload={"Parts": sorted(parts, key=lambda p: p["PartNumber"])},
    )
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"".join(bodies)


def test_a_presigned_url_serves_its_object_and_nothing_else(
    s3_cluster: DevCluster, bucket: str
) -> None:
    s3 = client(s3_cluster)
    s3.put_object(Bucket=bucket, Key="shared", Body=b"for the grader")
    s3.put_object(Bucket=bucket, Key="private", Body=b"not for it")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=300
    )
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"for the grader"
    for forged in (url.replace("/shared?", "/private?"), url.replace("Signature=", "Signature=0")):
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(forged, timeout=30)
        assert raised.value.code == 403


def test_wrong_credentials_are_refused(s3_cluster: DevCluster, bucket: str) -> None:
    wrong_secret = client(s3_cluster, aws_secret_access_key="not-the-secret")
    assert refusal(wrong_secret.list_buckets) == "SignatureDoesNotMatch"
    assert refusal(lambda: wrong_secret.get_object(Bucket=bucket, Key="x")) in {
        "SignatureDoesNotMatch",
        "AccessDenied",
    }
    unknown_key = client(s3_cluster, aws_access_key_id="AKIAUNKNOWN")
    assert refusal(unknown_key.list_buckets) == "InvalidAccessKeyId"


def test_stop_kills_the_server_it_started(s3_cluster: DevCluster) -> None:
    try:
        second = start("dev_s3.sh", new_state_dir("s3"))
    except RuntimeError as error:
        pytest.fail(str(error))
    pid = second.pid("weed")
    client(second).create_bucket(Bucket="before-stop")
    stop(second)
    assert not alive(pid)
    assert processes_touching(second.state_dir) == []
    assert not second.state_dir.exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(second.exports["MLEB_S3_ENDPOINT_URL"], timeout=10)
    # The session's server still answers.
    assert alive(s3_cluster.pid("weed"))
    client(s3_cluster).list_buckets()
