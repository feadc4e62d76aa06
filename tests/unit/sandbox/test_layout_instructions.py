"""instructions.txt is MLE-bench's, with the differences docs/sandbox.md lists and no others."""

from __future__ import annotations

import re
from pathlib import Path

from services.sandbox.node.layout import INSTRUCTIONS

DOCS = Path(__file__).resolve().parents[3] / "docs" / "sandbox.md"
# MLE-bench's bullets, in order (environment/instructions.txt at openai/mle-bench 783b15a).
UPSTREAM_BULLETS = [
    "Competition-specific instructions",
    "Dataset",
    "Submission",
    "Test set",
    "Submission checker",
    "Cheating",
]


def test_the_bullets_are_upstreams_plus_the_documented_time_limit():
    bullets = re.findall(r"^- \*\*(.+?)\*\*:", INSTRUCTIONS, flags=re.MULTILINE)
    added = [b for b in bullets if b not in UPSTREAM_BULLETS]
    assert [b for b in bullets if b in UPSTREAM_BULLETS] == UPSTREAM_BULLETS
    assert added == ["Time limit"]
    docs = DOCS.read_text()
    for bullet in added:
        assert f"**{bullet}** bullet is added" in docs


def test_the_grpc_sentence_and_the_obfuscated_variant_are_documented():
    checker = re.search(r"^- \*\*Submission checker\*\*:(.*)$", INSTRUCTIONS, re.MULTILINE)
    assert "MLEB_GRADER_ADDR" in checker.group(1) and "mleb-validate" in checker.group(1)
    docs = DOCS.read_text()
    assert "**Submission checker** bullet ends with one more sentence" in docs
    assert "instructions_obfuscated.txt" in docs
