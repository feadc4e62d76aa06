"""Text classification: which language is a chatbot's line of dialogue written in?
(The dialogue corpus shipped inside the `chatterbot-corpus` wheel; graded by macro F1.)

Lines are whitespace-normalised and de-duplicated; a line found under several languages is
dropped, as are languages with fewer than MIN_LINES distinct lines left.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pandas as pd
import yaml

from services.builtin.definition import KEY, Definition, Task
from services.builtin.folder import write_competition
from services.common.errors import FailedPreconditionError

PACKAGE = "chatterbot_corpus"
REQUIREMENT = "chatterbot-corpus==1.3.3"
MIN_LINES = 60
# The corpus folder for Traditional Chinese is named without a separator.
_LANGUAGE_NAMES = {"traditionalchinese": "traditional_chinese"}


def _corpus_root() -> Path:
    try:
        return Path(str(importlib.resources.files(PACKAGE) / "data"))
    except ModuleNotFoundError as exc:
        raise FailedPreconditionError(
            f"the {DEFINITION.id} competition is built from the {REQUIREMENT} package, which "
            f"is not installed: pip install {REQUIREMENT}"
        ) from exc


def _lines(path: Path) -> list[str]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
    lines = []
    for conversation in document.get("conversations") or []:
        for line in conversation if isinstance(conversation, list) else [conversation]:
            if isinstance(line, str) and line.strip():
                lines.append(" ".join(line.split()))
    return lines


def _rows() -> pd.DataFrame:
    pairs = [
        (_LANGUAGE_NAMES.get(path.parent.name, path.parent.name), line)
        for path in sorted(_corpus_root().glob("*/*.yml"))
        for line in _lines(path)
    ]
    frame = pd.DataFrame(pairs, columns=["language", "text"]).drop_duplicates()
    languages_per_text = frame.groupby("text")["language"].transform("nunique")
    frame = frame[languages_per_text == 1]
    lines_per_language = frame.groupby("language")["text"].transform("size")
    frame = frame[lines_per_language >= MIN_LINES].reset_index(drop=True)
    frame[KEY] = frame["language"] + "\n" + frame["text"]
    return frame[["text", "language", KEY]]


DEFINITION = Definition(
    id="chatbot-language-id",
    name="Chatbot Language Identification",
    metric="macro-f1",
    lower_is_better=False,
    category="Text Classification",
    task=Task.TEXT,
    id_column="id",
    target_column="language",
    test_fraction=0.25,
    rows=_rows,
    source=f"the multilingual dialogue corpus shipped in the {REQUIREMENT} wheel (BSD-3-Clause)",
)


def build(dest: Path) -> Path:
    return write_competition(DEFINITION, dest)
