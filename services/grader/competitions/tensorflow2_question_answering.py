"""TensorFlow 2.0 Question Answering: micro-averaged F1 of long- and short-answer predictions
(higher is better). Answers are JSONL, one Natural Questions example per line with
`example_id` and `annotations` (the first annotation is the truth); the submission has two
rows per example, `<example_id>_long` and `<example_id>_short`, with a `PredictionString` of
"start:end" token spans, "YES", "NO" or nothing.

Each row is a binary decision: predicted = 1 when a prediction is given; expected = 1 when the
given prediction is a correct one or, for an empty prediction, when some correct answer exists.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import (
    require_columns,
    require_known_values,
    require_unique,
)

Answer = tuple[int, int] | str


def accepted_answers(answers: list[dict[str, Any]]) -> dict[str, frozenset[Answer]]:
    """The correct predictions for each submission row id."""
    accepted: dict[str, frozenset[Answer]] = {}
    for example in answers:
        truth = example["annotations"][0]
        example_id = str(example["example_id"])
        long = truth["long_answer"]
        has_long = long["start_token"] != -1
        spans = [(int(long["start_token"]), int(long["end_token"]))] if has_long else []
        accepted[f"{example_id}_long"] = frozenset(spans)
        short: set[Answer] = {
            (int(span["start_token"]), int(span["end_token"])) for span in truth["short_answers"]
        }
        if truth["yes_no_answer"] != "NONE":
            short.add(truth["yes_no_answer"])
        accepted[f"{example_id}_short"] = frozenset(short)
    return accepted


def _parse(prediction: str) -> Answer:
    """A stripped PredictionString as a (start, end) span, "YES", "NO" or ""."""
    if prediction.count(":") == 1:
        start, end = prediction.split(":")
        try:
            return int(start), int(end)
        except ValueError:
            pass
    elif prediction in ("YES", "NO", ""):
        return prediction
    raise InvalidSubmission(
        f"PredictionString {prediction!r} is not 'start:end' (two integers), 'YES', 'NO' or empty."
    )


def grade(submission: pd.DataFrame, answers: list[dict[str, Any]]) -> float:
    if len(submission) != 2 * len(answers):
        raise InvalidSubmission(
            f"Submission has {len(submission)} rows, but {2 * len(answers)} are expected "
            "(a _long and a _short row per example)."
        )
    # As in MLE-bench, every cell is text and an empty cell an empty prediction.
    sub = submission.fillna("").astype(str)
    require_columns(sub, ["example_id", "PredictionString"])
    accepted = accepted_answers(answers)
    require_known_values(
        sub, "example_id", list(accepted), "'<test example_id>_long' or '<test example_id>_short'"
    )
    require_unique(sub, "example_id")

    predictions = sub["PredictionString"].str.strip()
    # Rows are few (two per test example); int() on the span bounds has no vectorised twin.
    expected = [
        parsed in accepted[row] if parsed else bool(accepted[row])
        for row, parsed in zip(sub["example_id"], map(_parse, predictions), strict=True)
    ]
    predicted = (predictions != "").to_numpy(dtype=int)
    return float(f1_score(np.asarray(expected, dtype=int), predicted, average="micro"))


SPEC = CompetitionSpec(
    id="tensorflow2-question-answering",
    lower_is_better=False,
    grade=grade,
    answers_format="jsonl",
    version=2,
    float64_score=True,
)
