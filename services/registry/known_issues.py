"""Known problems with MLE-bench tasks, served with each competition by GetCompetition.

Some upstream tasks leak their answers or are set up wrongly (see the openai/mle-bench
threads cited in known_issues.yaml). Scores on them are not comparable to Kaggle's, so the
registry tells every caller about them instead of leaving each lab to find out. The data is
a checked-in YAML file, loaded and validated once on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

KINDS = frozenset({"leakage", "wrong-setup"})
URL_PREFIX = "https://github.com/openai/mle-bench/"
_FIELDS = ("competition_id", "upstream_issue", "url", "kind", "title", "summary")
_DATA = Path(__file__).with_name("known_issues.yaml")


@dataclass(frozen=True)
class KnownIssue:
    competition_id: str
    upstream_issue: int
    url: str
    kind: str
    title: str
    summary: str


def parse_entry(entry: Mapping[str, Any]) -> KnownIssue:
    """One YAML entry as a KnownIssue; ValueError says what is wrong with it."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"entry must be a mapping, got {type(entry).__name__}")
    if missing := [f for f in _FIELDS if f not in entry]:
        raise ValueError(f"entry missing {', '.join(missing)}: {dict(entry)!r}")
    if extra := sorted(set(entry) - set(_FIELDS)):
        raise ValueError(f"entry has unknown fields {', '.join(extra)}")
    number = entry["upstream_issue"]
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise ValueError(f"upstream_issue must be a positive integer, got {number!r}")
    for name in ("competition_id", "url", "kind", "title", "summary"):
        if not isinstance(entry[name], str) or not entry[name].strip():
            raise ValueError(f"{name} must be a non-empty string")
    if entry["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {entry['kind']!r}")
    if not entry["url"].startswith(URL_PREFIX):
        raise ValueError(f"url must start with {URL_PREFIX}, got {entry['url']!r}")
    return KnownIssue(**{name: entry[name] for name in _FIELDS})


@cache
def _by_competition() -> dict[str, tuple[KnownIssue, ...]]:
    entries = yaml.safe_load(_DATA.read_text(encoding="utf-8")) or []
    if not isinstance(entries, list):
        raise ValueError(f"{_DATA.name} must hold a list of entries")
    grouped: dict[str, list[KnownIssue]] = {}
    for entry in entries:
        issue = parse_entry(entry)
        grouped.setdefault(issue.competition_id, []).append(issue)
    return {
        cid: tuple(sorted(issues, key=lambda i: i.upstream_issue))
        for cid, issues in grouped.items()
    }


def known_issues(competition_id: str) -> tuple[KnownIssue, ...]:
    """The known issues for a competition, by upstream number; empty if it has none."""
    return _by_competition().get(competition_id, ())


def competitions_with_known_issues() -> frozenset[str]:
    return frozenset(_by_competition())
