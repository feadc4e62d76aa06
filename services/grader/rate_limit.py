"""Per-sandbox rate limit on validation.

The buckets live in one replica's memory, so with N grader replicas behind a round-robin
balancer a sandbox may validate up to N times the configured rate. That is deliberate:
sharing buckets would need a store, and validation is cheap to over-serve.
"""

from __future__ import annotations

import time

import cachetools

from services.common.errors import QuotaViolation, ResourceExhaustedError


class TokenBucketLimiter:
    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        # key -> (tokens, last refill time); the least recently seen keys are forgotten.
        self._buckets: cachetools.LRUCache[str, tuple[float, float]] = cachetools.LRUCache(
            maxsize=max_keys
        )

    def acquire(self, key: str) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate_per_s)
        if tokens < 1.0:
            retry_after = (1.0 - tokens) / self.rate_per_s
            self._buckets[key] = (tokens, now)
            raise ResourceExhaustedError(
                "validation rate limit reached for this sandbox",
                reason="VALIDATION_RATE_LIMITED",
                metadata={"retry_after_s": f"{retry_after:.2f}"},
                quota=[
                    QuotaViolation(
                        subject=f"sandbox:{key}",
                        description=f"{self.rate_per_s:g} validations/s, burst {self.burst}, "
                        "per grader replica",
                    )
                ],
            )
        self._buckets[key] = (tokens - 1.0, now)
