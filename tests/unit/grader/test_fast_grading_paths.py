"""Grading through the fast paths gives the reference's score and message, to the letter.

The reference path: pandas reads the submission and the answers, and the answers stay
writable, so `align_on_ids` sorts both frames. The fast path: the grader's own reading and
caching (the pyarrow reader where proven, frozen answers, the cached id order). Generated
submissions cover the validity rules: missing, repeated, unknown and re-typed ids, short
files, NaN and out-of-range predictions, predictions of the wrong type.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.grader.competitions import get_spec
from services.grader.competitions.id_order import freeze
from services.grader.reading import read_answers
from services.grader.scoring import ScoreOutcome, score_frame, score_source
from tests.fixtures.csv_cells import CELLS, float_cells


def _text_ids(draw: st.DrawFn, n: int) -> list[str]:
    return draw(st.lists(st.from_regex(r"[0-9]{4}_0[1-3]", fullmatch=True), min_size=n,
                         max_size=n, unique=True))  # fmt: skip


def _int_ids(draw: st.DrawFn, n: int) -> list[int]:
    return draw(st.permutations(range(1, n + 1)))


def _hex_ids(draw: st.DrawFn, n: int) -> list[str]:
    return draw(st.lists(st.from_regex(r"[a-f0-9]{6}", fullmatch=True), min_size=n, max_size=n,
                         unique=True))  # fmt: skip


PROBABILITY = st.one_of(st.floats(0, 1).map(repr), st.sampled_from(["0", "1", "0.5", "1e-3"]))
# competition: (id column, target column, id maker, answer cell, prediction cell)
CASES = {
    "spaceship-titanic": (
        "PassengerId", "Transported", _text_ids, st.sampled_from(["True", "False"]),
        st.sampled_from(["True", "False", "true", "FALSE", "1", "0"]),
    ),
    "tabular-playground-series-may-2022": (
        "id", "target", _int_ids, st.sampled_from(["0", "1"]), PROBABILITY,
    ),
    "dogs-vs-cats-redux-kernels-edition": (
        "id", "label", _int_ids, st.sampled_from(["0", "1"]), PROBABILITY,
    ),
    "petfinder-pawpularity-score": (
        "Id", "Pawpularity", _hex_ids, st.integers(1, 100).map(str),
        st.one_of(st.integers(1, 100).map(str), float_cells()),
    ),
}  # fmt: skip
CHANGES = ["none", "shuffled", "sorted", "unknown", "repeat", "drop", "as float", "cells"]


@st.composite
def graded_files(draw: st.DrawFn) -> tuple[str, bytes, bytes]:
    competition = draw(st.sampled_from(sorted(CASES)))
    id_column, target, make_ids, answer_cell, prediction_cell = CASES[competition]
    n = draw(st.integers(2, 14))
    ids = make_ids(draw, n)
    truth = [draw(answer_cell) for _ in ids]
    if len(set(truth)) < 2 and competition != "petfinder-pawpularity-score":
        truth[0], truth[1] = ("True", "False") if truth[0] in ("True", "False") else ("0", "1")
    answers = "\n".join(
        [f"{id_column},extra,{target}"] + [f"{i},x{i},{t}" for i, t in zip(ids, truth, strict=True)]
    )
    rows = [[str(i), draw(prediction_cell)] for i in ids]
    change = draw(st.sampled_from(CHANGES))
    event(f"{competition}/{change}")
    if change == "shuffled":
        rows = draw(st.permutations(rows))
    elif change == "sorted":
        rows = sorted(rows)
    elif change == "unknown":
        rows[draw(st.integers(0, n - 1))][0] = "9999"
    elif change == "repeat":
        rows[-1][0] = rows[0][0]
    elif change == "drop":
        rows.pop(draw(st.integers(0, n - 1)))
    elif change == "as float":
        rows = [[f"{row[0]}.0", row[1]] for row in rows]
    elif change == "cells":
        rows[draw(st.integers(0, n - 1))][1] = draw(CELLS).replace(",", ";")
    submission = "\n".join([f"{id_column},{target}"] + [",".join(row) for row in rows]) + "\n"
    return competition, answers.encode(), submission.encode()


def _same(fast: ScoreOutcome, reference: ScoreOutcome) -> bool:
    if fast.score is not None and reference.score is not None:
        both_nan = math.isnan(fast.score) and math.isnan(reference.score)
        return fast.error == reference.error and (both_nan or fast.score == reference.score)
    return fast == reference


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graded_files())
def test_fast_paths_grade_exactly_as_the_reference(case: tuple[str, bytes, bytes]) -> None:
    competition, answers_csv, submission_csv = case
    spec = get_spec(competition)
    assert spec is not None
    reference_answers = pd.read_csv(io.BytesIO(answers_csv), float_precision="round_trip")
    try:
        reference_submission = pd.read_csv(io.BytesIO(submission_csv), float_precision="round_trip")
    except (pd.errors.ParserError, ValueError):
        reference = None
    else:
        reference = score_frame(spec, reference_submission, reference_answers)
    cached = freeze(read_answers(answers_csv, "csv"))
    fast = score_source(spec, io.BytesIO(submission_csv), cached.copy(deep=False))
    event("valid" if fast.valid else "invalid")
    if reference is None:
        assert not fast.valid and fast.error.startswith("Submission is not a readable CSV file")
    else:
        assert _same(fast, reference), (fast, reference)


def test_a_large_grading_takes_both_fast_paths_and_scores_the_same() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    ids = np.array([f"{i:05d}_01" for i in rng.permutation(n)], dtype=object)
    truth = rng.random(n) < 0.5
    answers = pd.DataFrame({"PassengerId": ids, "Transported": truth})
    guess = np.where(rng.random(n) < 0.8, truth, ~truth)
    spec = get_spec("spaceship-titanic")
    assert spec is not None
    cached = freeze(read_answers(answers.to_csv(index=False).encode(), "csv"))
    for order in (np.arange(n), rng.permutation(n), np.argsort(ids, kind="stable")):
        data = pd.DataFrame({"PassengerId": ids[order], "Transported": guess[order]})
        data_csv = data.to_csv(index=False).encode()
        reference = score_frame(spec, pd.read_csv(io.BytesIO(data_csv)), answers.copy())
        assert score_source(spec, io.BytesIO(data_csv), cached.copy(deep=False)) == reference
        assert reference.score == round(float(np.mean(guess == truth)), 5)
