"""`mleb verify`: checks a run group's evidence offline against trusted public keys
(docs/verifiable-runs.md#verifying). Every check becomes a Finding; any failed one fails."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mleb.evidence.chain import (
    SCORING_RPCS,
    ChainRecord,
    check_chain,
    read_chain,
    segment_digest,
)
from mleb.evidence.dsse import (
    GRADING_PREDICATE,
    SANDBOX_PREDICATE,
    Envelope,
    EvidenceError,
    subject_digests,
)
from mleb.evidence.keys import Keyring
from mleb.lab.bundle_figures import (
    EXPERIMENTS_FILE,
    SUMMARY_FILE,
    bundle_figures,
    read_experiments,
)
from mleb.lab.evidence_files import ATTESTATION_FILE, AUDIT_CHAIN_FILE, GRADING_STATEMENT_FILE
from mleb.lab.orchestrator import RUN_GROUP_LABEL
from mleb.lab.records import (
    GRADING_REPORT_SUFFIX,
    RUN_FILE,
    RecordError,
    RunGroup,
    load_run_group,
)

# The report fields a grading statement must agree with.
REPORT_FIELDS = (
    "competition_id", "score", "gold_threshold", "silver_threshold", "bronze_threshold",
    "median_threshold", "any_medal", "gold_medal", "silver_medal", "bronze_medal",
    "above_median", "submission_exists", "valid_submission", "submission_path",
)  # fmt: skip
# What a regrade must reproduce: the score and everything decided from it.
REGRADED_FIELDS = ("score", "valid_submission", "any_medal", "gold_medal", "silver_medal",
                   "bronze_medal", "above_median")  # fmt: skip
TOTALS = {
    "total_runs": lambda e: 1,
    "total_runs_with_submissions": lambda e: e["submission_exists"],
    "total_valid_submissions": lambda e: e["valid_submission"],
    "total_medals": lambda e: e["gold_medal"] or e["silver_medal"] or e["bronze_medal"],
    "total_gold_medals": lambda e: e["gold_medal"],
    "total_silver_medals": lambda e: e["silver_medal"],
    "total_bronze_medals": lambda e: e["bronze_medal"],
    "total_above_median": lambda e: e["above_median"],
}


@dataclass(frozen=True)
class Finding:
    file: str
    check: str
    ok: bool
    detail: str = ""


@dataclass
class _Run:
    """What one run's evidence says, once its signatures checked out."""

    run_id: str
    sandbox_id: str
    tenant: str
    competition_id: str
    audit: dict[str, Any]
    submission_sha256: str = ""
    # Scoring calls the sandbox service saw on this competition while the sandbox existed.
    scoring_calls: list[dict[str, Any]] = field(default_factory=list)
    graded_seq: int = 0


@dataclass
class Verification:
    keys: Keyring
    # Seqs of scoring calls the group declares (metadata.json, declared_grader_calls).
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    def add(self, file: Path | str, check: str, problem: str | None, ok_detail: str = "") -> bool:
        self.findings.append(Finding(str(file), check, problem is None, problem or ok_detail))
        return problem is None

    def envelope(self, path: Path, predicate_type: str) -> dict[str, Any] | None:
        """The statement of a signed envelope, or None (with a finding) if it fails."""
        try:
            envelope = Envelope.from_json(path.read_bytes())
            keyid = envelope.verify(self.keys)
            statement = envelope.statement()
        except (OSError, EvidenceError) as exc:
            self.add(path, "signature", str(exc))
            return None
        if statement.get("predicateType") != predicate_type:
            self.add(path, "predicateType", f"is {statement.get('predicateType')!r}")
            return None
        self.add(path, "signature", None, f"key {keyid[:16]}")
        return statement


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_group(group_dir: Path, keys: Keyring) -> Verification:
    result = Verification(keys)
    try:
        group = load_run_group(group_dir)
    except RecordError as exc:
        result.add(group_dir, "run group", str(exc))
        return result
    runs = [run for run in (_verify_run(result, group, rid) for rid in group.runs) if run]
    _verify_totals(result, group)
    chain_path = group_dir / AUDIT_CHAIN_FILE
    try:
        chain = read_chain(chain_path.read_text(encoding="utf-8"))
    except (OSError, EvidenceError) as exc:
        result.add(chain_path, "audit chain", str(exc))
        return result
    problems = check_chain(chain)
    result.add(chain_path, "continuity", "; ".join(problems) or None, f"{len(chain)} records")
    _verify_all_reported(result, group, chain)
    declared = set(group.metadata.declared_grader_calls) if group.metadata else set()
    by_seq = {record.seq: record for record in chain}
    for run in runs:
        _verify_run_chain(result, group_dir / run.run_id, run, by_seq, runs, declared)
    return result


def _verify_run(result: Verification, group: RunGroup, run_id: str) -> _Run | None:
    run_dir = group.path / run_id
    record = group.runs[run_id]
    statement = result.envelope(run_dir / ATTESTATION_FILE, SANDBOX_PREDICATE)
    if statement is None:
        return None
    predicate = statement.get("predicate", {})
    sandbox_id = record.attempts[-1].sandbox_id if record.attempts else ""
    attested = predicate.get("sandbox", {}).get("id")
    competition = predicate.get("competition", {}).get("id")
    result.add(
        run_dir / ATTESTATION_FILE,
        "sandbox",
        None
        if (attested, competition) == (sandbox_id, record.competition_id)
        else f"attests sandbox {attested} of {competition}, but run.json ran "
        f"{sandbox_id} of {record.competition_id}",
    )
    subjects = subject_digests(statement)
    run = _Run(
        run_id, str(attested), predicate.get("sandbox", {}).get("tenant", ""),
        record.competition_id, predicate.get("audit", {}), subjects.get("submission.csv", ""),
        [c for c in predicate.get("scoring_calls", []) if isinstance(c, dict)],
    )  # fmt: skip
    submission = run_dir / "submission" / "submission.csv"
    held = _sha256(submission) if submission.is_file() else ""
    result.add(
        submission,
        "submission bytes",
        None if held == run.submission_sha256 else
        f"sha256 {held or '(no file)'} but the sandbox attested {run.submission_sha256 or 'none'}",
    )  # fmt: skip
    entry = next((e for e in group.entries if group.run_for(e) is record), None)
    if entry is None:
        result.add(group.grading_report_path, "report entry", f"no entry grades {run_id}")
        return run
    _verify_grading(result, run_dir, run, entry, held)
    return run


def _verify_grading(
    result: Verification, run_dir: Path, run: _Run, entry: Mapping[str, Any], held: str
) -> None:
    path = run_dir / GRADING_STATEMENT_FILE
    if not held:
        # Nothing to grade: the report must say so, and no grade may be claimed.
        result.add(
            path,
            "ungraded run",
            None if not entry.get("submission_exists") and not path.exists() else
            "the report grades a submission this run does not hold",
        )  # fmt: skip
        return
    statement = result.envelope(path, GRADING_PREDICATE)
    if statement is None:
        return
    graded = set(subject_digests(statement).values())
    result.add(path, "graded bytes", None if graded == {held} else
               "the statement grades other bytes than the run's submission")  # fmt: skip
    signed = statement.get("predicate", {}).get("report", {})
    differing = [name for name in REPORT_FIELDS if signed.get(name) != entry.get(name)]
    result.add(
        path, "report", f"differs from the grading report in {', '.join(differing)}"
        if differing else None,
    )  # fmt: skip
    run.graded_seq = int(statement.get("predicate", {}).get("audit_record", {}).get("seq", 0))
    run.audit["graded_hash"] = statement["predicate"].get("audit_record", {}).get("hash", "")


def _verify_totals(result: Verification, group: RunGroup) -> None:
    try:
        report = json.loads(group.grading_report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        result.add(group.grading_report_path, "totals", str(exc))
        return
    wrong = [
        name
        for name, counts in TOTALS.items()
        if report.get(name) != sum(bool(counts(e)) for e in group.entries)
    ]
    result.add(
        group.grading_report_path,
        "totals",
        f"{', '.join(wrong)} do not recompute from the entries" if wrong else None,
    )


def _verify_run_chain(
    result: Verification,
    run_dir: Path,
    run: _Run,
    by_seq: Mapping[int, ChainRecord],
    runs: Iterable[_Run],
    declared: set[int],
) -> None:
    where = run_dir / ATTESTATION_FILE
    first, last = int(run.audit.get("first_seq", 0)), int(run.audit.get("last_seq", 0))
    anchor = by_seq.get(last)
    if anchor is None or anchor.hash != run.audit.get("last_hash"):
        result.add(where, "audit anchor", f"record {last} is not in the chain as attested")
        return
    window = [by_seq[s] for s in range(first, last + 1) if s in by_seq]
    if len(window) != last - first + 1:
        result.add(where, "audit segment", f"records {first}..{last} are not all present")
        return
    own = [r for r in window if r.body is not None and r.body.get("sandbox_id") == run.sandbox_id]
    result.add(
        where, "audit segment",
        None if segment_digest(own) == run.audit.get("segment_digest") else
        "the sandbox's records do not hash to the attested segment digest",
    )  # fmt: skip
    if run.graded_seq:
        graded = by_seq.get(run.graded_seq)
        body = graded.body if graded else None
        result.add(
            run_dir / GRADING_STATEMENT_FILE, "grading record",
            None if graded and graded.hash == run.audit.get("graded_hash") and body
            and body.get("rpc") == "GradeSubmission"
            and body.get("submission_sha256") == run.submission_sha256
            else f"record {run.graded_seq} is not this grading call",
        )  # fmt: skip
    _verify_no_feedback(result, where, run, window, by_seq, runs, declared)


def _scoring(body: Mapping[str, Any], run: _Run) -> bool:
    return (
        body.get("rpc") in SCORING_RPCS
        and body.get("competition_id") == run.competition_id
        and (body.get("tenant") == run.tenant or body.get("role") == "service")
    )


def _verify_no_feedback(
    result: Verification,
    where: Path,
    run: _Run,
    window: list[ChainRecord],
    by_seq: Mapping[int, ChainRecord],
    runs: Iterable[_Run],
    declared: set[int],
) -> None:
    """No scoring call on the competition while the sandbox existed, by its lab or a service:
    those the attestation lists (signed from the whole chain, so an export that withholds a
    body hides nothing) and those the exported chain shows."""
    calls = {int(c.get("seq") or 0): c for c in run.scoring_calls}
    hidden = [
        seq for seq, call in calls.items()
        if (by_seq.get(seq) is None or by_seq[seq].body is None
            or by_seq[seq].body.get("submission_sha256") != call.get("submission_sha256"))
    ]  # fmt: skip
    result.add(where, "scoring calls shown", f"records {hidden} are withheld or altered"
               if hidden else None)  # fmt: skip
    calls.update({r.seq: r.body for r in window if r.body is not None and _scoring(r.body, run)})
    # Harness grading of a run that had already ended is not feedback to this one.
    finished = {r.submission_sha256: int(r.audit.get("last_seq", 0)) for r in runs}
    leaks = sorted(
        seq for seq, call in calls.items()
        if seq not in declared
        and not (call.get("submission_sha256") in finished
                 and finished[call["submission_sha256"]] < seq)
    )  # fmt: skip
    result.add(
        where, "no test-set feedback",
        f"scoring calls on {run.competition_id} while the sandbox ran: records {leaks}"
        if leaks else None,
    )  # fmt: skip


def _verify_all_reported(result: Verification, group: RunGroup, chain: list[ChainRecord]) -> None:
    """Every sandbox created in the exported range under this group's label is one of its runs:
    a seed dropped from the folder still has its "created" record. The label is read from the
    group's own runs' records, which the chain protects, not from the folder's name."""
    attempts = {a.sandbox_id for run in group.runs.values() for a in run.attempts}
    created = [
        r.body for r in chain
        if r.body is not None and r.body.get("event") == "created"
        and isinstance(r.body.get("labels"), dict)
    ]  # fmt: skip
    names = {b["labels"].get(RUN_GROUP_LABEL) for b in created if b.get("sandbox_id") in attempts}
    unreported = sorted(
        str(b.get("sandbox_id")) for b in created
        if b["labels"].get(RUN_GROUP_LABEL) in names - {None}
        and b.get("sandbox_id") not in attempts
    )  # fmt: skip
    result.add(
        group.path / AUDIT_CHAIN_FILE, "every run reported",
        f"sandboxes {unreported} ran for this group but are not in it" if unreported else None,
    )  # fmt: skip


def is_group(path: Path) -> bool:
    return any(path.glob(f"*{GRADING_REPORT_SUFFIX}"))


def group_dirs(path: Path) -> list[Path]:
    """The run groups `path` holds: itself, its parent (one run), or a bundle's."""
    if (path / RUN_FILE).is_file():
        return [path.parent]
    if is_group(path):
        return [path]
    return [path / "runs" / name for name in read_experiments(path / "runs" / EXPERIMENTS_FILE)]


Grade = Callable[[str, Path, str], Mapping[str, Any]]


def regrade(result: Verification, path: Path, grade: Grade) -> None:
    """Grades every submission again through `grade` (a live grader) and compares."""
    only = path.name if (path / RUN_FILE).is_file() else None
    for group_dir in group_dirs(path):
        group = load_run_group(group_dir)
        for entry in group.entries:
            run = group.run_for(entry)
            if run is None or (only and run.run_id != only) or not entry.get("submission_exists"):
                continue
            shown = str(entry["submission_path"])
            fresh = grade(str(entry["competition_id"]), group_dir / shown, shown)
            differing = [f for f in REGRADED_FIELDS if fresh.get(f) != entry.get(f)]
            result.add(
                group_dir / shown, "regrade",
                f"a live grader now gives other {', '.join(differing)}" if differing else None,
            )  # fmt: skip


def verify_path(path: Path, keys: Keyring) -> Verification:
    """A run group, one run of one (checked with its group), or a leaderboard bundle."""
    if (path / RUN_FILE).is_file():
        result = verify_group(path.parent, keys)
        result.findings = [
            f for f in result.findings
            if Path(f.file).is_relative_to(path) or Path(f.file).parent == path.parent
        ]  # fmt: skip
        return result
    if is_group(path):
        return verify_group(path, keys)
    return verify_bundle(path, keys)


def verify_bundle(path: Path, keys: Keyring) -> Verification:
    """Each run group under runs/, then the bundle's figures recomputed from them."""
    result = Verification(keys)
    experiments = path / "runs" / EXPERIMENTS_FILE
    try:
        listed = read_experiments(experiments)
    except (OSError, ValueError) as exc:
        result.add(experiments, "bundle", f"not a run group or a leaderboard bundle: {exc}")
        return result
    groups = []
    for name in listed:
        group_result = verify_group(path / "runs" / name, keys)
        result.findings.extend(group_result.findings)
        groups.append(path / "runs" / name)
    summary_path = path / SUMMARY_FILE
    try:
        claimed = json.loads(summary_path.read_text(encoding="utf-8"))
        recomputed = bundle_figures(
            [load_run_group(g) for g in groups], claimed["splits_membership"],
            claimed["known_issue_competitions"],
        )  # fmt: skip
    except (OSError, ValueError, KeyError, RecordError) as exc:
        result.add(summary_path, "figures", f"cannot be recomputed: {exc}")
        return result
    wrong = [k for k, v in recomputed.items() if claimed.get(k) != v]
    result.add(summary_path, "figures", f"{', '.join(wrong)} do not recompute" if wrong else None)
    return result
