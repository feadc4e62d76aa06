"""The checked-in MLE-bench known-issues data loads, validates, and refuses bad entries."""

from __future__ import annotations

import pytest
import yaml

from services.registry import known_issues as ki

EXPECTED = {
    63: "tensorflow-speech-recognition-challenge",
    70: "champs-scalar-coupling",
    77: "multi-modal-gesture-recognition",
    93: "smartphone-decimeter-2022",
    98: "hubmap-kidney-segmentation",
    108: "random-acts-of-pizza",
    128: "dog-breed-identification",
}

GOOD = {
    "competition_id": "some-comp",
    "upstream_issue": 1,
    "url": "https://github.com/openai/mle-bench/issues/1",
    "kind": "leakage",
    "title": "A title",
    "summary": "A summary.",
}


def all_issues() -> list[ki.KnownIssue]:
    return [i for cid in ki.competitions_with_known_issues() for i in ki.known_issues(cid)]


def test_data_loads_with_all_seven_upstream_issues() -> None:
    issues = all_issues()
    assert {i.upstream_issue: i.competition_id for i in issues} == EXPECTED
    assert len(issues) == len(EXPECTED)
    assert ki.competitions_with_known_issues() == frozenset(EXPECTED.values())
    for issue in issues:
        assert issue.kind in {"leakage", "wrong-setup"}
        assert issue.url.endswith(f"/{issue.upstream_issue}")
        assert issue.title and issue.summary
    assert ki.known_issues("random-acts-of-pizza")[0].kind == "leakage"
    assert ki.known_issues("champs-scalar-coupling")[0].kind == "wrong-setup"
    assert ki.known_issues("no-such-competition") == ()


def test_every_raw_entry_passes_the_validator() -> None:
    raw = yaml.safe_load(ki._DATA.read_text(encoding="utf-8"))
    assert len(raw) == 7
    assert [ki.parse_entry(entry) for entry in raw]
    assert ki.parse_entry(GOOD) == ki.KnownIssue(**GOOD)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "typo"}, "kind"),
        ({"upstream_issue": 0}, "upstream_issue"),
        ({"upstream_issue": "63"}, "upstream_issue"),
        ({"upstream_issue": True}, "upstream_issue"),
        ({"url": "https://github.com/someone/else/issues/1"}, "url"),
        ({"url": "http://github.com/openai/mle-bench/issues/1"}, "url"),
        ({"title": ""}, "title"),
        ({"competition_id": None}, "competition_id"),
        ({"extra": "x"}, "unknown fields"),
    ],
)
def test_malformed_entry_is_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ki.parse_entry({**GOOD, **change})


@pytest.mark.parametrize("field", sorted(GOOD))
def test_entry_missing_a_field_is_refused(field: str) -> None:
    entry = {k: v for k, v in GOOD.items() if k != field}
    with pytest.raises(ValueError, match=f"missing {field}"):
        ki.parse_entry(entry)


def test_non_mapping_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="mapping"):
        ki.parse_entry(["not", "a", "dict"])  # type: ignore[arg-type]


def test_frozen() -> None:
    issue = ki.parse_entry(GOOD)
    with pytest.raises(AttributeError):
        issue.kind = "wrong-setup"  # type: ignore[misc]
