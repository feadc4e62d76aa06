"""`mleb verify PATH`: which kind of folder PATH is, and the leaderboard bundle's own checks:
each run group inside, then every figure, the README and the disclosure rebuilt and compared.

A bundle's split lists and known issues are what its figures are computed from, so they are
never taken from the bundle: they come from a source the verifier names (the registry it is
configured for, or MLE-bench's split files), and without one the check fails and says so."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mleb.evidence.keys import Keyring
from mleb.lab.bundle_figures import (
    EXPERIMENTS_FILE,
    README_FILE,
    SUMMARY_FILE,
    bundle_readme,
    bundle_summary,
    read_experiments,
)
from mleb.lab.findings import Verification
from mleb.lab.group_folder import load_run_group
from mleb.lab.records import RUN_FILE, RecordError, read_bounded, read_json
from mleb.lab.verification import is_group, verify_group

# Stated by whoever made the bundle, and not a figure: not compared.
_UNCHECKED = ("generated_at", "mleb_version")


@dataclass(frozen=True)
class Trusted:
    """Split membership and known issues from outside the bundle; None: none to be had."""

    splits: Mapping[str, Sequence[str]] | None = None
    known_issues: Mapping[str, Sequence[Mapping[str, Any]]] | None = None
    source: str = ""


def group_dirs(path: Path) -> list[Path]:
    """The run groups `path` holds: itself, its parent (one run), or a bundle's."""
    if (path / RUN_FILE).is_file():
        return [path.parent]
    if is_group(path):
        return [path]
    experiments = path / "runs" / EXPERIMENTS_FILE
    listed = read_experiments(read_bounded(experiments).decode("utf-8"), experiments.name)
    return [path / "runs" / name for name in listed]


def verify_path(path: Path, keys: Keyring, trusted: Trusted) -> Verification:
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
    result = Verification(keys)
    try:
        _verify_bundle(result, path, trusted)
    except Exception as exc:  # a hostile folder must end in a finding, not a traceback
        result.add(path, "evidence readable", f"{type(exc).__name__}: {exc}")
    return result


def _verify_bundle(result: Verification, path: Path, trusted: Trusted) -> None:
    try:
        groups = group_dirs(path)
    except (RecordError, ValueError, UnicodeDecodeError) as exc:
        result.add(path, "bundle", f"not a run group or a leaderboard bundle: {exc}")
        return
    for group_dir in groups:
        result.findings.extend(verify_group(group_dir, result.keys).findings)
    summary_path = path / SUMMARY_FILE
    claimed = read_json(summary_path)
    if not isinstance(claimed, dict):
        result.add(summary_path, "figures", "summary.json is not an object")
        return
    loaded = [load_run_group(g) for g in groups]
    ran = {str(e.get("competition_id")) for g in loaded for e in g.entries}
    if trusted.splits is None or trusted.known_issues is None:
        result.add(summary_path, "splits and known issues",
                   "not checked: pass --splits-dir, or set MLEB_REGISTRY_ADDR to the "
                   "deployment's registry")  # fmt: skip
        return
    splits = {name: trusted.splits[name] for name in claimed.get("splits_membership", {})
              if name in trusted.splits}  # fmt: skip
    known = {c: issues for c, issues in trusted.known_issues.items() if c in ran}
    expected = bundle_summary(loaded, splits, known, str(claimed.get("experiment_id", "")))
    wrong = sorted(
        key for key in {*expected, *claimed} - set(_UNCHECKED)
        if _normal(expected.get(key)) != _normal(claimed.get(key))
    )  # fmt: skip
    result.add(
        summary_path, "figures",
        f"{', '.join(wrong)} do not recompute (splits and known issues from {trusted.source})"
        if wrong else None,
    )  # fmt: skip
    readme = path / README_FILE
    held = read_bounded(readme).decode("utf-8", errors="replace")
    result.add(readme, "readme", None if held == bundle_readme(claimed) and not wrong
               else "is not what the verified summary gives")  # fmt: skip


def _normal(value: Any) -> str:
    """JSON text both sides compare as (tuples and lists alike)."""
    return json.dumps(value, sort_keys=True)
