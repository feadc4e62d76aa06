"""Split membership and known task issues: what reports and bundles are computed with, read
from the registry (ListSplits, GetCompetition) or, offline, from MLE-bench's split files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import json_format

from mleb.errors import MlebError
from mleb.lab import environment
from mleb.splits import canonical_split

# The splits a report covers, in this order ("low" is also called lite, "all" split75).
REPORT_SPLITS = ("low", "medium", "high", "all")
# Registry splits reported too when the groups ran any of their competitions: the demo's own.
EXTRA_SPLITS = ("builtin",)
REGISTRY_TIMEOUT_S = 15.0


class SplitsError(Exception):
    """The split lists could not be had; the message says why."""


def splits_from_dir(folder: Path) -> dict[str, list[str]]:
    """MLE-bench's experiments/splits/*.txt: one competition id a line."""
    if not folder.is_dir():
        raise SplitsError(f"--splits-dir {folder} is not a folder")
    found = {}
    for path in sorted(folder.glob("*.txt")):
        name = canonical_split(path.stem)
        if name in REPORT_SPLITS:
            lines = path.read_text(encoding="utf-8").splitlines()
            found[name] = [s.strip() for s in lines if s.strip() and not s.startswith("#")]
    if not found:
        raise SplitsError(
            f"--splits-dir {folder} holds none of low.txt, medium.txt, high.txt, split75.txt"
        )
    return {name: found[name] for name in REPORT_SPLITS if name in found}


def splits_from_registry(address: str, token: str, ran: set[str]) -> dict[str, list[str]]:
    """The report splits the registry has, and the extra splits the groups ran (`ran`)."""
    try:
        with environment.client(registry=address, token=token) as client:
            response = client.list_splits(timeout=REGISTRY_TIMEOUT_S)
    except MlebError as exc:
        raise SplitsError(f"registry {address}: {exc}") from exc
    found = {s.name: list(s.competition_ids) for s in response.splits}
    wanted = [*REPORT_SPLITS, *(n for n in EXTRA_SPLITS if ran.intersection(found.get(n, ())))]
    if not any(name in found for name in wanted):
        raise SplitsError(
            f"registry {address} has none of the splits {', '.join(REPORT_SPLITS)}, and the "
            f"run groups ran no competition of {', '.join(EXTRA_SPLITS)}"
        )
    return {name: found[name] for name in wanted if name in found}


def known_issues_from_registry(
    address: str, token: str, ids: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """The registry's known upstream issues of each competition in `ids` that has some."""
    found: dict[str, list[dict[str, Any]]] = {}
    with environment.client(registry=address or None, token=token) as client:
        for competition_id in sorted(ids):
            try:
                issues = client.get_competition(
                    competition_id, omit_public_files=True, timeout=REGISTRY_TIMEOUT_S
                )
            except MlebError as exc:
                if exc.code == "NOT_FOUND":  # a group's competition the registry lacks
                    continue
                raise
            listed = [
                json_format.MessageToDict(i, preserving_proto_field_name=True)
                for i in issues.competition.known_issues
            ]
            if listed:
                found[competition_id] = listed
    return found
