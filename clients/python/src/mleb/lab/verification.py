"""`mleb verify`: checks a run group's evidence offline against trusted public keys
(docs/verifiable-runs.md#verifying). Every check becomes a Finding; any failed one fails.

The folder is someone else's and may be hostile: every file is read bounded and without
following links (records.read_bounded), and anything that cannot be read or parsed becomes a
failed finding, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mleb.evidence.chain import read_chain
from mleb.evidence.dsse import GRADING_PREDICATE, SANDBOX_PREDICATE, EvidenceError, subject_digests
from mleb.evidence.keys import Keyring
from mleb.files import UnsafeFile, open_regular
from mleb.lab.chain_checks import verify_chain
from mleb.lab.evidence_files import ATTESTATION_FILE, AUDIT_CHAIN_FILE, GRADING_STATEMENT_FILE
from mleb.lab.findings import AttestedRun, Verification
from mleb.lab.group_folder import load_run_group
from mleb.lab.records import GRADING_REPORT_SUFFIX, RecordError, RunGroup, read_bounded

# The report fields a grading statement must agree with.
REPORT_FIELDS = (
    "competition_id", "score", "gold_threshold", "silver_threshold", "bronze_threshold",
    "median_threshold", "any_medal", "gold_medal", "silver_medal", "bronze_medal",
    "above_median", "submission_exists", "valid_submission", "submission_path",
)  # fmt: skip
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
CHAIN_BYTES = 4 * 1024**3


# As large as the grader takes (its default MLEB_MAX_SUBMISSION_BYTES), hashed as it streams.
SUBMISSION_BYTES = 2 * 1024**3


def _sha256(path: Path) -> str:
    """The submission's digest, opened like every other file (no links, only a regular
    file), but streamed: a submission may be far bigger than any record."""
    try:
        with open_regular(path, SUBMISSION_BYTES) as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except UnsafeFile:
        return ""


def verify_group(
    group_dir: Path, keys: Keyring, result: Verification | None = None
) -> Verification:
    result = result or Verification(keys)
    try:
        _verify_group(result, group_dir)
    except Exception as exc:  # a hostile folder must end in a finding, not a traceback
        result.add(group_dir, "evidence readable", f"{type(exc).__name__}: {exc}")
    return result


def _verify_group(result: Verification, group_dir: Path) -> None:
    try:
        group = load_run_group(group_dir)
    except RecordError as exc:
        result.add(group_dir, "run group", str(exc))
        return
    _verify_entries(result, group)
    _verify_totals(result, group)
    runs = [run for run in (_verify_run(result, group, rid) for rid in group.runs) if run]
    chain_path = group_dir / AUDIT_CHAIN_FILE
    try:
        chain = read_chain(read_bounded(chain_path, CHAIN_BYTES).decode("utf-8"))
    except (RecordError, EvidenceError, UnicodeDecodeError) as exc:
        result.add(chain_path, "audit chain", str(exc))
        return
    verify_chain(result, group, runs, chain)


def _verify_entries(result: Verification, group: RunGroup) -> None:
    """The grading report's entries and the group's runs match one to one."""
    graded: dict[str, int] = {}
    stray = []
    for index, entry in enumerate(group.entries):
        run = group.run_for(entry)
        if run is None:
            stray.append(index)
        else:
            graded[run.run_id] = graded.get(run.run_id, 0) + 1
    twice = sorted(r for r, n in graded.items() if n > 1)
    missing = sorted(set(group.runs) - set(graded))
    problems = [
        *([f"entries {stray} grade no run of the group"] if stray else []),
        *([f"runs {twice} are graded more than once"] if twice else []),
        *([f"runs {missing} have no entry"] if missing else []),
    ]
    result.add(group.grading_report_path, "entries", "; ".join(problems) or None)


def _verify_run(result: Verification, group: RunGroup, run_id: str) -> AttestedRun | None:
    run_dir = group.path / run_id
    record = group.runs[run_id]
    statement = result.envelope(run_dir / ATTESTATION_FILE, SANDBOX_PREDICATE)
    if statement is None:
        return None
    run = AttestedRun(run_id, record, statement["predicate"])
    sandbox_id = record.attempts[-1].sandbox_id if record.attempts else ""
    competition = run.predicate.get("competition", {}).get("id")
    result.add(
        run_dir / ATTESTATION_FILE,
        "sandbox",
        None
        if (run.sandbox_id, competition) == (sandbox_id, record.competition_id)
        else f"attests sandbox {run.sandbox_id} of {competition}, but run.json ran "
        f"{sandbox_id} of {record.competition_id}",
    )
    _verify_budget(result, run_dir / ATTESTATION_FILE, run)
    run.submission_sha256 = subject_digests(statement).get("submission.csv", "")
    submission = run_dir / "submission" / "submission.csv"
    held = _sha256(submission)
    result.add(
        submission,
        "submission bytes",
        None if held == run.submission_sha256 else
        f"sha256 {held or '(no file)'} but the sandbox attested {run.submission_sha256 or 'none'}",
    )  # fmt: skip
    entry = next((e for e in group.entries if group.run_for(e) is record), None)
    if entry is not None:
        _verify_grading(result, run_dir, run, entry, held)
    return run


def _verify_budget(result: Verification, where: Path, run: AttestedRun) -> None:
    """What the sandbox was allowed is what the run says it asked for."""
    budget, predicate = run.record.budget, run.predicate
    requested = predicate.get("resources", {}).get("requested", {})
    network = predicate.get("network", {})
    image = predicate.get("image", {})
    wanted = budget.network.partition(":")[0] if budget else None
    checks = {
        "image": image.get("reference") == run.record.image,
        "network": budget is None or network.get("mode") == wanted,
        "time limit": budget is None
        or predicate.get("time", {}).get("limit_s") == budget.time_limit_s,
        "GPUs": budget is None or requested.get("gpu_count") == budget.gpus,
        "CPUs": budget is None or not budget.cpus or requested.get("cpus") == budget.cpus,
        "memory": budget is None
        or not budget.memory_bytes
        or requested.get("memory_bytes") == budget.memory_bytes,
    }
    differing = [name for name, ok in checks.items() if not ok]
    result.add(
        where, "budget", f"the attested {', '.join(differing)} differ from run.json"
        if differing else None,
    )  # fmt: skip


def _verify_grading(
    result: Verification, run_dir: Path, run: AttestedRun, entry: Mapping[str, Any], held: str
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
    predicate = statement["predicate"]
    graded = set(subject_digests(statement).values())
    result.add(path, "graded bytes", None if graded == {held} else
               "the statement grades other bytes than the run's submission")  # fmt: skip
    signed = predicate.get("report") or {}
    differing = [name for name in REPORT_FIELDS if signed.get(name) != entry.get(name)]
    if signed.get("competition_id") != run.record.competition_id:
        differing.append("the run's competition")
    result.add(
        path, "report", f"differs from the grading report in {', '.join(differing)}"
        if differing else None,
    )  # fmt: skip
    record = predicate.get("audit_record") or {}
    run.graded_seq, run.graded_hash = int(record.get("seq") or 0), str(record.get("hash", ""))


def _verify_totals(result: Verification, group: RunGroup) -> None:
    report = json.loads(read_bounded(group.grading_report_path))
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


def is_group(path: Path) -> bool:
    return any(path.glob(f"*{GRADING_REPORT_SUFFIX}"))


# (competition id, the submission's bytes, its submission_path) -> the fresh report.
Grade = Callable[[str, bytes, str], Mapping[str, Any]]
# What a regrade must reproduce: the score and everything decided from it.
REGRADED_FIELDS = ("score", "valid_submission", "any_medal", "gold_medal", "silver_medal",
                   "bronze_medal", "above_median")  # fmt: skip


def regrade(result: Verification, group_dirs: list[Path], grade: Grade, only: str = "") -> None:
    """Grades each run's own submission file again through `grade` (a live grader) and
    compares. Only `<run>/submission/submission.csv` is ever sent, read without links: a
    report entry cannot point the reviewer's grader at some other file."""
    for group_dir in group_dirs:
        group = load_run_group(group_dir)
        for entry in group.entries:
            run = group.run_for(entry)
            if run is None or (only and run.run_id != only) or not entry.get("submission_exists"):
                continue
            file = group_dir / run.run_id / "submission" / "submission.csv"
            try:
                data = read_bounded(file)
            except RecordError as exc:
                result.add(file, "regrade", str(exc))
                continue
            fresh = grade(run.competition_id, data, str(entry.get("submission_path", "")))
            differing = [f for f in REGRADED_FIELDS if fresh.get(f) != entry.get(f)]
            result.add(
                file, "regrade",
                f"a live grader now gives other {', '.join(differing)}" if differing else None,
            )  # fmt: skip
