"""The agent's output as the log API streams it, with timestamps, cut into lines.

Read in chunks, never by readline: a line the agent never ends (a progress bar's \\r) must
not grow in the service's memory. A line longer than MAX_LINE_BYTES comes out in pieces.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any, NamedTuple

from services.sandbox.backends.base import OutputLine, OutputStream
from services.sandbox.node.runner_files import MAX_LINE_BYTES

_CHUNK = 64 * 1024


class Piece(NamedTuple):
    data: bytes
    # False for the rest of a line cut at MAX_LINE_BYTES: only a line's start carries the
    # log API's timestamp, and the rest is the agent's text, whatever it looks like.
    starts_line: bool


class LogLines:
    """The lines of one log stream; `next_line()` is blocking (a thread of the backend's)."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._buffer = b""
        self._ended = False
        self._at_line_start = True

    def next_line(self) -> Piece:
        """The next line (or piece of one); empty data once the stream ended, or broke."""
        from urllib3.exceptions import HTTPError

        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 or len(self._buffer) >= MAX_LINE_BYTES or self._ended:
                cut = end + 1 if end >= 0 else min(len(self._buffer), MAX_LINE_BYTES)
                line, self._buffer = self._buffer[:cut], self._buffer[cut:]
                piece = Piece(line, self._at_line_start)
                self._at_line_start = line.endswith(b"\n")
                return piece
            try:
                # What has arrived, at most a chunk: read() would wait for a whole chunk.
                data = self._response.read1(_CHUNK)
            except (HTTPError, OSError, ValueError):
                data = b""  # ValueError: shut down from another thread while reading
            if data:
                self._buffer += data
            else:
                self._ended = True

    def close(self) -> None:
        """Ends the stream, waking a read still waiting on another thread."""
        # RuntimeError: already back in the pool, the stream having ended.
        with contextlib.suppress(RuntimeError):
            self._response.shutdown()
        self._response.release_conn()


def parse_log_line(piece: Piece, carried: float) -> OutputLine | None:
    """`<RFC 3339 time with nanoseconds> <text>` as the log API sends it with timestamps;
    the rest of a cut line has none, and takes `carried`, its start's time. None for what
    cannot be placed in time (a start without a time, a rest without its start)."""
    text = piece.data.decode("utf-8", errors="replace").rstrip("\n")
    if not piece.starts_line:
        return OutputLine(OutputStream.STDOUT, text, carried) if carried else None
    stamp, _, rest = text.partition(" ")
    try:
        # Python reads microseconds: the nanoseconds' last three digits go.
        whole, _, fraction = stamp.rstrip("Z").partition(".")
        at = datetime.fromisoformat(f"{whole}.{(fraction + '000000')[:6]}+00:00").timestamp()
    except ValueError:
        return None
    return OutputLine(OutputStream.STDOUT, rest, at)
