"""Keeping the server's file paths out of what clients read; the server log keeps them."""

from __future__ import annotations

import re

# An absolute POSIX path of two or more components, as importers used to write into stored
# reasons and notes ("/srv/mleb/data/x/prepared/public is missing").
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])/(?:[\w.~+@-]+/)+[\w.~+@-]*")


def redact_server_paths(text: str) -> str:
    """`text` with every absolute path replaced by its last component, marked as elided."""

    def shorten(match: re.Match[str]) -> str:
        name = match.group(0).rstrip("/").rsplit("/", 1)[-1]
        return f"…/{name}" if name else "…"

    return _ABSOLUTE_PATH.sub(shorten, text)
