"""Grading specs of the text, sequence and retrieval competitions, on tiny synthetic answers in
MLE-bench's formats (the columns each competition's prepare.py writes), read back through the
grading core's CSV reader so dtypes are what the grader really sees.

Expected scores were computed by running MLE-bench's own grade.py (openai/mle-bench HEAD,
pandas 2.2.3, scikit-learn 1.9.1, Levenshtein 0.27.5) on exactly these frames.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from services.grader.competitions import get_spec
from services.grader.competitions.base import InvalidSubmission
from services.grader.competitions.freesound_audio_tagging_2019 import CLASS_NAMES
from services.grader.competitions.jigsaw_unintended_bias_in_toxicity_classification import (
    IDENTITIES,
)
from services.grader.reading import read_answers, read_table

SECRET = "SECRETANSWER"  # appears in answer values only; no message may ever show it


def csv_round_trip(frame: pd.DataFrame) -> pd.DataFrame:
    return read_table(io.BytesIO(frame.to_csv(index=False).encode()))


@dataclass(frozen=True)
class Case:
    answers: Any
    perfect: pd.DataFrame  # scores `best`
    best: float
    submission: pd.DataFrame  # an imperfect submission in answers order, scoring `expected`
    expected: float
    id_col: str
    target_col: str


def billion_word() -> Case:
    answers = pd.DataFrame(
        {"id": [0, 1, 2], "sentence": [f"the {SECRET} sat", "a b c", "hello world again"]}
    )
    submission = answers.assign(sentence=["the sat", "a b c", "hello world"])
    # Distances 13 + 0 + 6 (hand-checked: delete "SECRETANSWER " and " again").
    return Case(answers, answers, 0.0, submission, 19 / 3, "id", "sentence")


def bms() -> Case:
    answers = pd.DataFrame(
        {"image_id": ["000a1", "000b2"], "InChI": [f"InChI=1S/{SECRET}", "InChI=1S/CH4/h1H4"]}
    )
    submission = answers.assign(InChI=["InChI=1S/H2O", "InChI=1S/CH4/h1H4"])
    return Case(answers, answers, 0.0, submission, 6.0, "image_id", "InChI")


def gesture() -> Case:
    answers = pd.DataFrame({"Id": [300, 301, 302], "Sequence": ["1 2 3", "4 5", "7"]})
    submission = answers.assign(Sequence=["1 3", "4 5 6", "7"])
    # (1 + 1 + 0) edits over 6 true gestures.
    return Case(answers, answers, 0.0, submission, 1 / 3, "Id", "Sequence")


def chaii() -> Case:
    answers = pd.DataFrame(
        {"id": ["a1", "b2", "c3"], "PredictionString": ["नमस्ते दुनिया", SECRET, "சென்னை"]}
    )
    submission = answers.assign(PredictionString=["नमस्ते", "x", None])
    return Case(answers, answers, 1.0, submission, 1 / 6, "id", "PredictionString")


def tweet() -> Case:
    answers = pd.DataFrame(
        {
            "textID": ["t1", "t2", "t3"],
            "text": ["Good Day all", "so bad", "meh"],
            "selected_text": ["Good Day", f"bad {SECRET}", "meh"],
            "sentiment": ["positive", "negative", "neutral"],
        }
    )
    submission = answers[["textID", "selected_text"]].assign(
        selected_text=["good", "very bad", None]
    )
    # Jaccard 1/2, 1/3 and 0 (an empty prediction against "meh"): 5/18, as summed by numpy.
    return Case(
        answers,
        answers[["textID", "selected_text"]],
        1.0,
        submission,
        0.27777777777777773,
        "textID",
        "selected_text",
    )


def h_and_m() -> Case:
    answers = pd.DataFrame({"customer_id": ["c1", "c2"], "prediction": [f"a1 {SECRET}", "a3"]})
    submission = pd.DataFrame(
        {"customer_id": ["c1", "c2", "c9"], "prediction": [f"{SECRET} a9 a1", "a3 a3", "a1"]}
    )
    perfect = submission.assign(prediction=[f"a1 {SECRET}", "a3", "x"])
    # c1: hits at ranks 1 and 3 -> (1 + 2/3) / 2; c2: 1; c9 is not graded.
    return Case(answers, perfect, 1.0, submission, 11 / 12, "customer_id", "prediction")


def hotel() -> Case:
    answers = pd.DataFrame(
        {
            "image": ["i1.jpg", "i2.jpg"],
            "chain": [3, 5],
            "hotel_id": [101, 202],
            "timestamp": ["2018-01-01 10:00:00", "2019-02-02 11:00:00"],
        }
    )
    perfect = answers[["image", "hotel_id"]]
    submission = perfect.assign(hotel_id=["303 101", "202 404"])
    return Case(answers, perfect, 1.0, submission, 0.75, "image", "hotel_id")


def whale() -> Case:
    answers = pd.DataFrame({"Image": ["a.jpg", "b.jpg"], "Id": ["new_whale", "w_1"]})
    submission = answers.assign(Id=["w_1 new_whale", "w_2 w_3 w_4 w_5 w_6 w_1"])
    # a: hit at rank 2 -> 1/2; b: the hit is beyond k = 5 -> 0.
    return Case(answers, answers, 1.0, submission, 0.25, "Image", "Id")


def freesound() -> Case:
    truth = np.zeros((3, len(CLASS_NAMES)), dtype=int)
    truth[0, [0, 1]] = 1
    truth[1, 2] = 1  # row 2 has no label and drops out
    answers = pd.DataFrame(truth, columns=list(CLASS_NAMES))
    answers.insert(0, "fname", ["f1.wav", "f2.wav", "f3.wav"])
    scores = np.zeros(truth.shape)
    scores[0, :3] = [0.9, 0.1, 0.5]  # labels ranked 1st and 3rd -> 1 and 2/3
    scores[1, :3] = [0.2, 0.1, 0.3]  # label ranked 1st -> 1
    submission = answers.copy()
    submission[list(CLASS_NAMES)] = scores
    return Case(answers, answers, 1.0, submission, (1 + 2 / 3 + 1) / 3, "fname", "0")


def _nq_example(example_id: str, long: tuple[int, int], shorts: list, yes_no: str) -> dict:
    return {
        "example_id": example_id,
        "question_text": "q",
        "document_text": SECRET,
        "long_answer_candidates": [],
        "annotations": [
            {
                "annotation_id": 1,
                "long_answer": {"start_token": long[0], "end_token": long[1], "candidate_index": 0},
                "short_answers": [{"start_token": s, "end_token": e} for s, e in shorts],
                "yes_no_answer": yes_no,
            }
        ],
    }


def tf2qa() -> Case:
    examples = [
        _nq_example("-101", (10, 20), [(12, 14)], "NONE"),
        _nq_example("202", (-1, -1), [], "NONE"),
        _nq_example("303", (30, 40), [], "YES"),
    ]
    answers = read_answers("\n".join(json.dumps(e) for e in examples).encode(), "jsonl")
    ids = [f"{e}_{kind}" for e in ("-101", "202", "303") for kind in ("long", "short")]
    perfect = pd.DataFrame(
        {"example_id": ids, "PredictionString": ["10:20", "12:14", "", "", "30:40", "YES"]}
    )
    # Decisions (expected, predicted): (1,1) (1,0) (0,1) (0,0) (1,1) (0,1): 3 of 6 agree.
    submission = perfect.assign(PredictionString=["10:20", "", "5:6", "", " 30:40 ", "NO"])
    return Case(answers, perfect, 1.0, submission, 0.5, "example_id", "PredictionString")


def jigsaw() -> Case:
    rng = np.random.default_rng(0)
    n = 60
    answers = pd.DataFrame({"id": np.arange(7000, 7000 + n), "comment_text": SECRET})
    answers["toxicity"] = rng.random(n).round(3)
    for identity in IDENTITIES:
        answers[identity] = np.where(rng.random(n) < 0.5, rng.random(n).round(2), np.nan)
    noise = rng.normal(0, 0.3, n)
    submission = pd.DataFrame(
        {"id": answers["id"], "prediction": np.clip(answers["toxicity"] + noise, 0, 1).round(3)}
    )
    perfect = submission.assign(prediction=answers["toxicity"])
    return Case(answers, perfect, 1.0, submission, 0.817403806896178, "id", "prediction")


def kuzushiji() -> Case:
    answers = pd.DataFrame(
        {
            "image_id": ["p1", "p2", "p3"],
            "labels": [f"A 0 0 10 10 {SECRET} 20 20 5 5", None, "C 0 0 4 4"],
        }
    )
    perfect = answers.assign(labels=[f"A 1 1 {SECRET} 21 21", None, "C 1 1"])
    # p1: A matched, a second A and a C are false positives, the secret box is missed;
    # p2: one false positive; p3: no prediction, one miss. tp 1, fp 3, fn 2 -> F1 = 2/7
    # (precision 1/4, recall 1/3; MLE-bench's float arithmetic gives the last digit).
    submission = answers.assign(labels=["A 5 5 A 6 6 C 21 21", "B 1 1", None])
    return Case(answers, perfect, 1.0, submission, 0.28571428571428575, "image_id", "labels")


CASES: dict[str, Callable[[], Case]] = {
    "billion-word-imputation": billion_word,
    "bms-molecular-translation": bms,
    "multi-modal-gesture-recognition": gesture,
    "chaii-hindi-and-tamil-question-answering": chaii,
    "tweet-sentiment-extraction": tweet,
    "h-and-m-personalized-fashion-recommendations": h_and_m,
    "hotel-id-2021-fgvc8": hotel,
    "whale-categorization-playground": whale,
    "freesound-audio-tagging-2019": freesound,
    "tensorflow2-question-answering": tf2qa,
    "jigsaw-unintended-bias-in-toxicity-classification": jigsaw,
    "kuzushiji-recognition": kuzushiji,
}


def load(competition: str) -> Case:
    case = CASES[competition]()
    answers = case.answers
    if isinstance(answers, pd.DataFrame):
        answers = csv_round_trip(answers)
    return Case(
        answers,
        csv_round_trip(case.perfect),
        case.best,
        csv_round_trip(case.submission),
        case.expected,
        case.id_col,
        case.target_col,
    )


def grade(competition: str, submission: pd.DataFrame, answers: Any) -> float:
    return get_spec(competition).grade(submission, answers)


def rejection(competition: str, submission: pd.DataFrame, answers: Any) -> str:
    with pytest.raises(InvalidSubmission) as info:
        grade(competition, submission, answers)
    message = str(info.value)
    assert SECRET not in message
    return message


@pytest.mark.parametrize("competition", CASES)
def test_spec_is_registered(competition):
    spec = get_spec(competition)
    expected_format = "jsonl" if competition == "tensorflow2-question-answering" else "csv"
    assert spec is not None and spec.id == competition
    assert spec.answers_format == expected_format


@pytest.mark.parametrize("competition", CASES)
def test_perfect_submission_scores_best(competition):
    case = load(competition)
    assert grade(competition, case.perfect, case.answers) == case.best


@pytest.mark.parametrize("competition", CASES)
def test_score_matches_reference(competition):
    case = load(competition)
    assert grade(competition, case.submission, case.answers) == case.expected


# Graders whose MLE-bench score is a numpy float64 (np.mean and friends); the others return a
# Python float. The grading core rounds with the score's own round(), and the two differ
# (round(2.675, 2) is 2.67, round(np.float64(2.675), 2) is 2.68), so the type must match.
NUMPY_SCORES = {
    "billion-word-imputation",
    "bms-molecular-translation",
    "multi-modal-gesture-recognition",
    "h-and-m-personalized-fashion-recommendations",
    "hotel-id-2021-fgvc8",
    "whale-categorization-playground",
    # float64 under MLE-bench's scikit-learn 1.5.2 (observed): power means of AUCs, lrap,
    # jaccard_score and f1_score.
    "jigsaw-unintended-bias-in-toxicity-classification",
    "freesound-audio-tagging-2019",
    "chaii-hindi-and-tamil-question-answering",
    "tensorflow2-question-answering",
}


@pytest.mark.parametrize("competition", CASES)
def test_score_type_matches_reference(competition):
    case = load(competition)
    score = grade(competition, case.submission, case.answers)
    assert type(score) is (np.float64 if competition in NUMPY_SCORES else float)


@pytest.mark.parametrize("competition", CASES)
def test_row_order_does_not_matter(competition):
    case = load(competition)
    shuffled = case.submission.iloc[::-1].reset_index(drop=True)
    assert grade(competition, shuffled, case.answers) == grade(
        competition, case.submission, case.answers
    )


@pytest.mark.parametrize("competition", CASES)
def test_inputs_are_not_modified(competition):
    case = load(competition)
    submission = case.submission.copy()
    answers = case.answers.copy()
    grade(competition, case.submission, case.answers)
    pd.testing.assert_frame_equal(case.submission, submission)
    if isinstance(answers, pd.DataFrame):
        pd.testing.assert_frame_equal(case.answers, answers)
    else:
        assert case.answers == answers


def _without(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.drop(columns=[column])


def _fewer_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[1:]


def _empty(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame()


def _unknown_id(frame: pd.DataFrame, id_col: str) -> pd.DataFrame:
    frame = frame.copy()
    frame[id_col] = frame[id_col].astype(object)
    frame.iloc[0, frame.columns.get_loc(id_col)] = "zz-unknown_long"
    return frame


def _repeated_id(frame: pd.DataFrame, id_col: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.iloc[0, frame.columns.get_loc(id_col)] = frame[id_col].iloc[1]
    return frame


# Every competition's MLE-bench grader rejects these; where the target column is the
# submission's class columns (freesound), "missing target" drops one class column.
INVALID = {
    "missing id": lambda c: _without(c.submission, c.id_col),
    "missing target": lambda c: _without(
        c.submission, CLASS_NAMES[0] if c.id_col == "fname" else c.target_col
    ),
    "fewer rows": lambda c: _fewer_rows(c.submission),
    "empty file": lambda c: _empty(c.submission),
    "unknown id": lambda c: _unknown_id(c.submission, c.id_col),
    "repeated id": lambda c: _repeated_id(c.submission, c.id_col),
}


@pytest.mark.parametrize("variant", INVALID)
@pytest.mark.parametrize("competition", CASES)
def test_malformed_submissions_are_rejected(competition, variant):
    case = load(competition)
    message = rejection(competition, INVALID[variant](case), case.answers)
    assert message


def test_messages_name_the_problem():
    competition = "bms-molecular-translation"
    case = load(competition)
    assert "'InChI'" in rejection(competition, _without(case.submission, "InChI"), case.answers)
    assert "1 rows, but 2" in rejection(competition, _fewer_rows(case.submission), case.answers)
    message = rejection(competition, _unknown_id(case.submission, "image_id"), case.answers)
    assert "zz-unknown_long" in message


def with_value(frame: pd.DataFrame, column: str, value: Any, row: int = 0) -> pd.DataFrame:
    """A CSV round trip of `frame` with one cell replaced."""
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.iloc[row, frame.columns.get_loc(column)] = value
    return csv_round_trip(frame)


# Cells MLE-bench's graders reject (each fails there with an exception: a TypeError from
# Levenshtein, a ValueError from int() or float(), an AttributeError from str.lower()...).
@pytest.mark.parametrize(
    ("competition", "column", "value", "hint"),
    [
        ("billion-word-imputation", "sentence", None, "non-empty text"),
        ("multi-modal-gesture-recognition", "Sequence", "1 x", "integers"),
        ("multi-modal-gesture-recognition", "Sequence", "1 2.0", "integers"),
        ("multi-modal-gesture-recognition", "Sequence", None, "integers"),
        ("freesound-audio-tagging-2019", CLASS_NAMES[0], "high", "numeric"),
        ("freesound-audio-tagging-2019", CLASS_NAMES[0], None, "NaN"),  # in a labelled row
        ("tensorflow2-question-answering", "PredictionString", "1:2:3", "'1:2:3'"),
        ("tensorflow2-question-answering", "PredictionString", "a:2", "'a:2'"),
        ("tensorflow2-question-answering", "PredictionString", "maybe", "'maybe'"),
        ("jigsaw-unintended-bias-in-toxicity-classification", "prediction", "high", "numeric"),
        ("kuzushiji-recognition", "labels", "A 1", "triples"),
        ("kuzushiji-recognition", "labels", "A 1 1 ", "triples"),
        ("kuzushiji-recognition", "labels", "A 1 y", "non-numeric"),
    ],
)
def test_bad_cells_are_rejected(competition, column, value, hint):
    case = load(competition)
    message = rejection(competition, with_value(case.submission, column, value), case.answers)
    assert hint in message


# Odd cells MLE-bench still grades, with the score it gives (from its grade.py).
@pytest.mark.parametrize(
    ("competition", "column", "value", "row", "expected"),
    [
        # An empty InChI is the text "nan": distance 16 instead of 0 in row 1.
        ("bms-molecular-translation", "InChI", None, 1, (12 + 16) / 2),
        # A number is compared as its text (astype(str)): 0 words in common.
        ("tweet-sentiment-extraction", "selected_text", 5, 2, 0.27777777777777773),
        # Underscores and spaces are fine for Python's int(): "1_0" is 10, so 10:20 matches.
        ("tensorflow2-question-answering", "PredictionString", " 1_0 : 20", 0, 0.5),
        # A missing prediction counts as below 0.5 (row 0 was above).
        (
            "jigsaw-unintended-bias-in-toxicity-classification",
            "prediction",
            None,
            0,
            0.8081330650096383,
        ),
        # A page with no prediction is all misses; other pages are unchanged.
        ("kuzushiji-recognition", "labels", None, 1, 1 / 3),
        # Rows without any true class drop out of lwlrap, so a NaN there is never looked at.
        ("freesound-audio-tagging-2019", CLASS_NAMES[5], None, 2, 0.8888888888888888),
    ],
)
def test_odd_but_gradable_cells(competition, column, value, row, expected):
    case = load(competition)
    submission = with_value(case.submission, column, value, row)
    assert grade(competition, submission, case.answers) == expected


@pytest.mark.parametrize(
    ("competition", "extra_columns_ok"),
    [
        ("billion-word-imputation", True),
        ("hotel-id-2021-fgvc8", True),
        ("tensorflow2-question-answering", True),
        ("kuzushiji-recognition", True),
        ("h-and-m-personalized-fashion-recommendations", False),  # exact column set
        ("whale-categorization-playground", False),  # exact column set
        ("freesound-audio-tagging-2019", False),  # exact columns, in order
    ],
)
def test_extra_columns(competition, extra_columns_ok):
    case = load(competition)
    submission = case.submission.assign(notes="x")
    if extra_columns_ok:
        assert grade(competition, submission, case.answers) == case.expected
    else:
        assert "notes" in rejection(competition, submission, case.answers) or (
            competition == "freesound-audio-tagging-2019"
        )


def test_freesound_class_columns_must_keep_their_order():
    case = load("freesound-audio-tagging-2019")
    columns = ["fname", *reversed(CLASS_NAMES)]
    assert "order" in rejection(
        "freesound-audio-tagging-2019", case.submission[columns], case.answers
    )


def test_gesture_numbers_read_as_integers_still_grade():
    case = load("multi-modal-gesture-recognition")
    single = csv_round_trip(case.answers.assign(Sequence=[1, 4, 7]))
    assert single["Sequence"].dtype.kind == "i"
    # (2 + 1 + 0) deletions over 6 true gestures.
    assert grade("multi-modal-gesture-recognition", single, case.answers) == 0.5


def test_chaii_rejects_a_numeric_answer_column():
    case = load("chaii-hindi-and-tamil-question-answering")
    numbers = csv_round_trip(case.submission.assign(PredictionString=[1947, 1, 2]))
    assert "text" in rejection("chaii-hindi-and-tamil-question-answering", numbers, case.answers)


def test_tweet_two_empty_texts_fail_without_naming_the_row():
    case = load("tweet-sentiment-extraction")
    answers = with_value(case.answers, "selected_text", None, row=2)
    message = rejection("tweet-sentiment-extraction", case.submission, answers)
    assert "undefined" in message and "t3" not in message


def test_h_and_m_ignores_customers_without_purchases():
    case = load("h-and-m-personalized-fashion-recommendations")
    extra = pd.DataFrame({"customer_id": ["c7", "c8"], "prediction": ["a1", "a3"]})
    more = pd.concat([case.submission, extra], ignore_index=True)
    assert grade("h-and-m-personalized-fashion-recommendations", more, case.answers) == 11 / 12


def test_h_and_m_missing_customer_is_rejected_without_naming_it():
    case = load("h-and-m-personalized-fashion-recommendations")
    message = rejection(
        "h-and-m-personalized-fashion-recommendations", case.submission.iloc[[1, 2]], case.answers
    )
    assert "c1" not in message


def test_h_and_m_repeated_customer_is_rejected():
    # Intentional difference: MLE-bench pairs rows by position after filtering, so a repeated
    # graded id misaligns every later row (and a repeated ungraded id is silently accepted).
    case = load("h-and-m-personalized-fashion-recommendations")
    for row in (0, 2):  # a graded and an ungraded customer
        repeated = pd.concat([case.submission, case.submission.iloc[[row]]], ignore_index=True)
        assert "repeats" in rejection(
            "h-and-m-personalized-fashion-recommendations", repeated, case.answers
        )


def test_jigsaw_accepts_the_answers_column_name_but_not_both():
    competition = "jigsaw-unintended-bias-in-toxicity-classification"
    case = load(competition)
    renamed = case.submission.rename(columns={"prediction": "toxicity"})
    assert grade(competition, renamed, case.answers) == case.expected
    both = case.submission.assign(toxicity=0.2)
    assert "exactly one" in rejection(competition, both, case.answers)


def test_jigsaw_only_the_side_of_one_half_matters():
    competition = "jigsaw-unintended-bias-in-toxicity-classification"
    case = load(competition)
    cut = case.submission.assign(prediction=(case.submission["prediction"] >= 0.5) * 7.0 - 3)
    assert grade(competition, cut, case.answers) == case.expected


def test_tf2qa_yes_in_a_long_row_is_a_false_positive():
    case = load("tensorflow2-question-answering")
    submission = with_value(case.perfect, "PredictionString", "YES", row=0)
    # One decision of six now disagrees (expected 0, predicted 1).
    assert grade("tensorflow2-question-answering", submission, case.answers) == 5 / 6


def test_tf2qa_accepts_integer_example_ids_in_the_answers():
    case = load("tensorflow2-question-answering")
    answers = [dict(example, example_id=int(example["example_id"])) for example in case.answers]
    assert grade("tensorflow2-question-answering", case.perfect, answers) == 1.0


def test_kuzushiji_ids_must_match_exactly():
    case = load("kuzushiji-recognition")
    message = rejection(
        "kuzushiji-recognition", with_value(case.submission, "image_id", "P1"), case.answers
    )
    assert "'P1'" in message


def test_tf2qa_validates_through_the_grading_core_with_jsonl_answers():
    # MLE-bench's validate_submission reads these answers with read_csv, so it can never
    # validate this competition; here validation grades against the JSONL answers.
    from services.grader.scoring import score_source

    case = load("tensorflow2-question-answering")
    spec = get_spec("tensorflow2-question-answering")
    good = io.BytesIO(case.submission.to_csv(index=False).encode())
    assert score_source(spec, good, case.answers).valid
    bad = io.BytesIO(case.submission.iloc[1:].to_csv(index=False).encode())
    outcome = score_source(spec, bad, case.answers)
    assert not outcome.valid and SECRET not in outcome.validation_message()
