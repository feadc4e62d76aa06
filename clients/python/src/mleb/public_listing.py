"""The canonical digest of a competition's public file listing.

The registry stores it with each import and the sandbox service keys its node cache on
it, so both must compute it the same way: entries sorted by path (code point order, which
is UTF-8 byte order), each written as `path NUL size NUL sha256 LF` after a version line.
A path holds no NUL, the size is decimal digits and the sha256 is 64 hex digits, so no two
listings share an encoding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_VERSION = b"mleb-public-listing-v1\n"


def public_listing_digest(entries: Iterable[tuple[str, int, str]]) -> str:
    """SHA-256 (hex) of (path, size_bytes, sha256) entries, in any order."""
    digest = hashlib.sha256(_VERSION)
    for path, size, sha256 in sorted(entries):
        digest.update(b"%s\0%d\0%s\n" % (path.encode("utf-8"), size, sha256.encode("ascii")))
    return digest.hexdigest()
