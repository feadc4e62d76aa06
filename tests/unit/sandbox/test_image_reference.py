"""The image reference grammar (Docker's distribution/reference), issue 16 item 3."""

from __future__ import annotations

import pytest

from services.sandbox.lifecycle.image_reference import (
    ImageReference,
    InvalidReference,
    parse_image_reference,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ubuntu", ImageReference("", "ubuntu")),
        ("python:3.11-slim", ImageReference("", "python", "3.11-slim")),
        ("library/python:3", ImageReference("", "library/python", "3")),
        ("a__b/c.d-e---f:T_9", ImageReference("", "a__b/c.d-e---f", "T_9")),
        ("localhost/x", ImageReference("localhost", "x")),
        ("localhost:5000/a/b:tag", ImageReference("localhost:5000", "a/b", "tag")),
        ("[::1]:5000/foo", ImageReference("[::1]:5000", "foo")),
        (f"ghcr.io/org/x@{DIGEST}", ImageReference("ghcr.io", "org/x", "", DIGEST)),
        (f"ghcr.io/org/x:v1@{DIGEST}", ImageReference("ghcr.io", "org/x", "v1", DIGEST)),
        # The daemon takes a mixed-case registry host (observed), never a mixed-case path.
        ("Registry.Example.com/team/img", ImageReference("Registry.Example.com", "team/img")),
    ],
)
def test_valid_references(text: str, expected: ImageReference) -> None:
    assert parse_image_reference(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "UPPER/Case!!",
        "../x",
        "./x",
        "x/../y",
        "Ubuntu",
        "ghcr.io/Org/x",
        "a b",
        "a\x00b",
        "x:",
        "x:-tag",
        "x:" + "t" * 129,
        "x@sha256:abc",
        "x@sha256:" + "0" * 63,
        "x@@" + DIGEST,
        "-x",
        "x-",
        "x_-y",
        "x//y",
        "/x",
        "x/",
        "ümlaut",
        "host:port/x",
        "a" * 64,
        "a/" + "b" * 254,
        # Grammar-valid, but the Docker daemon refuses them (observed; issue 16 review).
        "Foo/bar",
        "busybox@md5:" + "0" * 32,
        "busybox@sha256:" + "A" * 64,
    ],
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_image_reference(text)
