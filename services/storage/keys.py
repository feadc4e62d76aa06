"""Object keys: a few '/'-separated names of plain characters, never a path trick.

Both stores use the same rules, so a key that works on a laptop works on S3, and a key can
never name anything outside the local store's root: no '..', no leading '/', no empty or
dot-first segment, no NUL, backslash or other character outside [A-Za-z0-9._-]."""

from __future__ import annotations

import re

from services.common.errors import InvalidArgumentError

# S3 allows 1024 bytes; this leaves room for a deployment's prefix. A segment is one file or
# folder name in the local store, which filesystems cap at 255 bytes.
MAX_KEY_BYTES = 512
MAX_SEGMENT_BYTES = 255
MAX_SEGMENTS = 16
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def _refused(why: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"object key refused: {why}", reason="BAD_OBJECT_KEY")


def check_key(key: str) -> list[str]:
    """The key's segments; raises InvalidArgumentError for a key outside the rules."""
    if not isinstance(key, str) or not key:
        raise _refused("empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise _refused(f"longer than {MAX_KEY_BYTES} bytes")
    segments = key.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise _refused(f"more than {MAX_SEGMENTS} segments")
    for segment in segments:
        if len(segment) > MAX_SEGMENT_BYTES:
            raise _refused(f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
        if not _SEGMENT.fullmatch(segment):
            raise _refused(
                "each '/'-separated segment must be non-empty, must not start with '.', and "
                "may hold only letters, digits, '.', '_' and '-'"
            )
    return segments
