"""The run group's audit-chain segment against its attestations (docs/verifiable-runs.md):
continuity, each run's records, no scoring while a sandbox ran, and no run left out."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from mleb.evidence.chain import SCORING_RPCS, ChainRecord, check_chain, segment_digest
from mleb.lab.evidence_files import ATTESTATION_FILE, AUDIT_CHAIN_FILE, GRADING_STATEMENT_FILE
from mleb.lab.findings import AttestedRun, Verification
from mleb.lab.records import FailureType, RunGroup
from mleb.lab.run_plan import RUN_GROUP_LABEL

# Failure reasons that are the infrastructure's: only those may be retried (records.py).
INFRASTRUCTURE_REASONS = frozenset({
    "ENGINE_ERROR", "IMAGE_NOT_FOUND", "GPU_UNAVAILABLE", "RUNTIME_ERROR", "LOST",
    "REGISTRY_ERROR",
})  # fmt: skip


def _body(record: ChainRecord) -> dict[str, Any]:
    """A record's body; {} for one withheld (another lab's) or not an object."""
    return record.body if isinstance(record.body, dict) else {}


def _bodies(chain: Sequence[ChainRecord]) -> list[dict[str, Any]]:
    return [r.body for r in chain if isinstance(r.body, dict)]


def verify_chain(
    result: Verification, group: RunGroup, runs: list[AttestedRun], chain: list[ChainRecord]
) -> None:
    where = group.path / AUDIT_CHAIN_FILE
    problems = check_chain(chain)
    result.add(where, "continuity", "; ".join(problems) or None, f"{len(chain)} records")
    if problems:
        return
    _verify_nothing_withheld(result, group, runs, chain)
    _verify_all_reported(result, group, runs, chain)
    declared = set(group.metadata.declared_grader_calls) if group.metadata else set()
    for seq in sorted(declared):
        result.add(where, "declared scoring call", None, f"record {seq}: accepted as declared")
    by_seq = {record.seq: record for record in chain}
    # Each sandbox's own end, read once for all runs: the chain can be long.
    ends = {b.get("sandbox_id"): b for b in _bodies(chain) if b.get("event") == "finished"}
    for run in runs:
        _verify_run_records(result, group, run, by_seq, declared)
        _verify_earlier_attempts(result, group.path / run.run_id / ATTESTATION_FILE, run, ends)


def _verify_nothing_withheld(
    result: Verification, group: RunGroup, runs: list[AttestedRun], chain: list[ChainRecord]
) -> None:
    """The registry numbers each tenant's records (tenant_seq): a record of the group's own
    lab withheld from the export, or left out, leaves a gap in its numbers."""
    tenants = {run.tenant for run in runs}
    gaps = []
    for tenant in sorted(tenants):
        found = [b.get("tenant_seq") for b in _bodies(chain) if b.get("tenant") == tenant]
        numbers = [n for n in found if isinstance(n, int)]
        if len(numbers) != len(found):
            gaps.append(f"{tenant}: a record has no tenant_seq")
            continue
        gaps += [
            f"{tenant}: records {a + 1}..{b - 1} of the lab's own are missing"
            for a, b in itertools.pairwise(numbers)
            if b != a + 1
        ]
    result.add(group.path / AUDIT_CHAIN_FILE, "own records shown", "; ".join(gaps) or None)


def _verify_all_reported(
    result: Verification, group: RunGroup, runs: list[AttestedRun], chain: list[ChainRecord]
) -> None:
    """Every sandbox created in the exported range under this group's label is one of its
    runs' attempts. The label comes from the signed attestations, not the folder's name."""
    labels = {
        str((run.predicate.get("sandbox", {}).get("labels") or {}).get(RUN_GROUP_LABEL))
        for run in runs
    }
    where = group.path / AUDIT_CHAIN_FILE
    if len(labels) > 1:
        result.add(where, "one run group", f"the attestations name groups {sorted(labels)}")
        return
    attempts = {a.sandbox_id for run in group.runs.values() for a in run.attempts}
    unreported = sorted(
        str(body.get("sandbox_id"))
        for body in _bodies(chain)
        if body.get("event") == "created"
        and isinstance(body.get("labels"), dict)
        and str(body["labels"].get(RUN_GROUP_LABEL)) in labels
        and body.get("sandbox_id") not in attempts
    )  # fmt: skip
    result.add(
        where, "every run reported",
        f"sandboxes {unreported} ran for this group but are not in it" if unreported else None,
    )  # fmt: skip


def _verify_run_records(
    result: Verification,
    group: RunGroup,
    run: AttestedRun,
    by_seq: Mapping[int, ChainRecord],
    declared: set[int],
) -> None:
    where = group.path / run.run_id / ATTESTATION_FILE
    audit = run.audit
    first, last = int(audit.get("first_seq") or 0), int(audit.get("last_seq") or 0)
    anchor = by_seq.get(last)
    if anchor is None or anchor.hash != audit.get("last_hash"):
        result.add(where, "audit anchor", f"record {last} is not in the chain as attested")
        return
    window = [by_seq[s] for s in range(first, last + 1) if s in by_seq]
    if len(window) != last - first + 1:
        result.add(where, "audit segment", f"records {first}..{last} are not all present")
        return
    own = [r for r in window if _body(r).get("sandbox_id") == run.sandbox_id]
    result.add(
        where, "audit segment",
        None if segment_digest(own) == audit.get("segment_digest") else
        "the sandbox's records do not hash to the attested segment digest",
    )  # fmt: skip
    if run.graded_seq:
        graded = by_seq.get(run.graded_seq)
        body = graded.body if graded and isinstance(graded.body, dict) else {}
        result.add(
            group.path / run.run_id / GRADING_STATEMENT_FILE, "grading record",
            None if graded and graded.hash == run.graded_hash
            and body.get("rpc") == "GradeSubmission"
            and body.get("competition_id") == run.record.competition_id
            and body.get("submission_sha256") == run.submission_sha256
            else f"record {run.graded_seq} is not this grading call",
        )  # fmt: skip
    _verify_no_feedback(result, where, run, window, by_seq, declared)


def _verify_earlier_attempts(
    result: Verification, where: Any, run: AttestedRun, ends: Mapping[Any, dict[str, Any]]
) -> None:
    """A run retried only after infrastructure failures: each earlier sandbox's own end is in
    the chain and names an infrastructure reason, so a seed cannot be re-rolled at will."""
    wrong = [
        attempt.sandbox_id
        for attempt in run.record.attempts[:-1]
        if attempt.failure_type is not FailureType.INFRASTRUCTURE
        or ends.get(attempt.sandbox_id, {}).get("failure_reason") not in INFRASTRUCTURE_REASONS
    ]
    result.add(
        where, "earlier attempts",
        f"attempts {wrong} did not end in an infrastructure failure on record" if wrong else None,
    )  # fmt: skip


def _scoring(body: Mapping[str, Any], run: AttestedRun) -> bool:
    return (
        body.get("rpc") in SCORING_RPCS
        and body.get("competition_id") == run.record.competition_id
        and (body.get("tenant") == run.tenant or body.get("role") == "service")
    )


def _verify_no_feedback(
    result: Verification,
    where: Any,
    run: AttestedRun,
    window: list[ChainRecord],
    by_seq: Mapping[int, ChainRecord],
    declared: set[int],
) -> None:
    """No scoring call on the competition while the sandbox existed, by its lab or the
    service role: those the attestation lists (signed, from the whole chain) and those the
    export shows. `mleb run` grades only after every sandbox of the group has ended."""
    listed = run.predicate.get("scoring_calls") or []
    calls = {int(c.get("seq") or 0): c for c in listed if isinstance(c, dict)}
    hidden = [
        seq for seq, call in calls.items()
        if seq not in by_seq or by_seq[seq].body is None
        or _body(by_seq[seq]).get("submission_sha256") != call.get("submission_sha256")
    ]  # fmt: skip
    result.add(where, "scoring calls shown", f"records {hidden} are withheld or altered"
               if hidden else None)  # fmt: skip
    calls.update(
        {r.seq: r.body for r in window if isinstance(r.body, dict) and _scoring(r.body, run)}
    )
    leaks = sorted(seq for seq in calls if seq not in declared)
    result.add(
        where, "no test-set feedback",
        f"scoring calls on {run.record.competition_id} while the sandbox ran: records {leaks}"
        if leaks else None,
    )  # fmt: skip
