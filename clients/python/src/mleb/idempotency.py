"""Whether each mleb RPC is safe to repeat, decided once per RPC.

Every RPC in protos/ has an entry (tests/unit/client/test_rpc_coverage.py fails otherwise), so
a new RPC cannot ship without someone deciding what a retry of it does. Each decision starts
with one of the prefixes in `KINDS`:

- "read-only": changes nothing a caller can see; repeat freely.
- "idempotent": changes state, but a repeat leaves the same state as the first call.
- "idempotency_key": a repeat is safe only when the request carries the same key.
- "not idempotent": a repeat does the work again; the text says what callers do instead.

Only "read-only" and "idempotent" RPCs may be retried automatically (mleb.channels).
ListPublicKeys exists in both GraderService and SandboxService; one decision covers both.
"""

from __future__ import annotations

KINDS = ("read-only", "idempotent", "idempotency_key", "not idempotent")

DECISIONS: dict[str, str] = {
    # RegistryService.
    "ListCompetitions": "read-only",
    "GetCompetition": "read-only",
    "ListPublicFiles": "read-only",
    "GetLeaderboard": "read-only",
    "ListSplits": "read-only",
    "DownloadPublicData": "read-only",
    "GetGradingBundle": "read-only: internal, service role only",
    "RevokeToken": "idempotent: revoking again keeps the first record and the longest life",
    "ListRevokedTokens": "read-only: internal; only prunes revocations that have expired anyway",
    "AppendAuditEvents": (
        "not idempotent: a retry appends again; internal, callers fail closed instead of retrying"
    ),
    "ExportAuditChain": "read-only",
    # GraderService: grading is stateless; every call, a retry too, adds its own audit record.
    "ValidateSubmission": "idempotent: same answer; a retry only adds another audit record",
    "ScoreSubmission": "idempotent: same score; a retry only adds another audit record",
    "GradeSubmission": "idempotent: same report; a retry only adds another audit record",
    "RankScore": "idempotent: same rank; a retry only adds another audit record",
    "ListPublicKeys": "read-only",
    # SandboxService.
    "CreateSandbox": "idempotency_key: a retry with the same key returns the first sandbox",
    "GetSandbox": "read-only",
    "ListSandboxes": "read-only",
    "StreamLogs": "read-only: resume with after_seq",
    "StopSandbox": "idempotent: stopping a stopped sandbox is a no-op",
    "DownloadArtifacts": "read-only",
    "ListGpus": "read-only",
}


def kind_of(rpc: str) -> str:
    """The decision's prefix (one of KINDS) for an RPC name such as "CreateSandbox"."""
    decision = DECISIONS[rpc]
    return next(kind for kind in KINDS if decision.split(":")[0] == kind)
