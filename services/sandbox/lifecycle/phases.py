"""How long each step of a sandbox's start took, logged as one line per start: where
concurrent starts queue (our threads, the database, the engine) shows in these lines."""

from __future__ import annotations

import time


class Phases:
    def __init__(self) -> None:
        self._last = time.monotonic()
        self.ms: dict[str, float] = {}

    def mark(self, name: str) -> None:
        """Ends the step `name`, begun when the previous one ended."""
        now = time.monotonic()
        self.ms[f"{name}_ms"] = round((now - self._last) * 1e3, 1)
        self._last = now
