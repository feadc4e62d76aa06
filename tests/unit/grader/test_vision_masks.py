"""Mask metrics and the segmentation competitions (tgs, hubmap, contrails, vesuvius, uw-madison).

Expected values of the tiny cases were computed by hand where noted, and all were checked
against MLE-bench's own graders (pandas 2.2.3, numpy 2.4) on the same CSVs.
"""

from __future__ import annotations

import importlib
import io

import numpy as np
import pandas as pd
import pytest

from services.grader.competitions.base import InvalidSubmission
from services.grader.metrics.masks import (
    MalformedRLE,
    decode_rle,
    dice,
    encode_rle,
    fbeta_from_counts,
    normalised_hausdorff,
    rle_runs,
    runs_intersection,
    runs_length,
)

MARKER = "SECRETMARK"


def csv_roundtrip(df: pd.DataFrame) -> pd.DataFrame:
    """The frame as the grading core would read it back from a CSV file."""
    return pd.read_csv(io.StringIO(df.to_csv(index=False)), float_precision="round_trip")


# --- metrics -----------------------------------------------------------------------------


def test_decode_is_column_major_and_encode_inverts_it():
    mask = decode_rle("2 2 6 1", height=3, width=2)
    # pixels 2-3 are rows 1-2 of column 0; pixel 6 is row 2 of column 1
    assert mask.tolist() == [[False, False], [True, False], [True, True]]
    assert encode_rle(mask) == "2 2 6 1"
    rng = np.random.default_rng(0)
    for _ in range(20):
        random_mask = rng.random((7, 5)) < 0.4
        assert (decode_rle(encode_rle(random_mask), 7, 5) == random_mask).all()


def test_runs_are_cut_at_the_image_end_like_the_reference():
    starts, ends = rle_runs("3 4 9 100 500 2", n_pixels=10)
    assert starts.tolist() == [2, 8] and ends.tolist() == [6, 10]
    assert rle_runs("   ", 10)[0].size == 0
    # Huge numbers are beyond any image: accepted and ignored, as in the reference.
    assert runs_length(*rle_runs("1 2 3 99999999999999999999999", 10)) == 10


@pytest.mark.parametrize(
    ("rle", "reason"),
    [
        ("5 2 1 2", "sorted"),
        ("1 5 3 2", "overlap"),
        ("0 3", "positive"),
        ("4 0", "positive"),
        ("4 -2", "positive"),
        ("1.5 2", "integers"),
        ("1 2 3", "pairs"),
        (float("nan"), "string"),
        (12, "string"),
    ],
)
def test_malformed_rle_is_refused(rle, reason):
    with pytest.raises(MalformedRLE, match=reason):
        rle_runs(rle, 100)


def test_overlap_beyond_the_image_is_ignored_like_the_reference():
    starts, _ = rle_runs("1 2 8 5 9 1", n_pixels=8)
    assert starts.tolist() == [0, 7]
    with pytest.raises(MalformedRLE):
        rle_runs("1 2 8 5 9 1", n_pixels=9)


def test_runs_intersection_matches_dense_masks():
    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = rng.random(60) < 0.5, rng.random(60) < 0.3
        runs_a = rle_runs(encode_rle(a[:, None]), 60)
        runs_b = rle_runs(encode_rle(b[:, None]), 60)
        assert runs_intersection(runs_a, runs_b) == int((a & b).sum())
        assert runs_length(*runs_a) == int(a.sum())


def test_dice_and_fbeta():
    assert dice(2, 4, 4, both_empty=1.0) == 0.5
    assert dice(0, 0, 0, both_empty=1.0) == 1.0
    assert np.isnan(dice(0, 0, 0, both_empty=np.nan))
    # scikit-learn: F0.5 = 1.25 tp / (0.25 (tp + fn) + tp + fp); 0 when nothing is positive.
    assert fbeta_from_counts(2, 1, 1, beta=0.5) == pytest.approx(2.5 / 3.75)
    assert fbeta_from_counts(0, 0, 0, beta=0.5) == 0.0


def test_normalised_hausdorff_conventions_and_value():
    empty, one = np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4), bool)
    one[0, 0, 0] = True
    assert np.isnan(normalised_hausdorff(empty, empty))
    assert normalised_hausdorff(one, one) == 0.0
    assert normalised_hausdorff(empty, one) == 1.0
    other = np.zeros((2, 4, 4), bool)
    other[1, 3, 0] = True
    # Points (0,0,0) and (1,3,0) scaled by (2,4,4): distance hypot(0.5, 0.75), over sqrt(3).
    assert normalised_hausdorff(other, one) == pytest.approx(np.hypot(0.5, 0.75) / np.sqrt(3))
    big = np.ones((2, 4, 4), bool)
    assert normalised_hausdorff(big, one) == 1.0  # over ten times the truth's size


# --- competitions ------------------------------------------------------------------------

UW_IDS = ["case1_day1_slice_0001"] * 3 + ["case1_day1_slice_0002"] * 3
UW_IDS += ["case2_day1_slice_0001"] * 3
UW_CLASSES = ["large_bowel", "small_bowel", "stomach"] * 3

# competition -> (answers, prediction column, tiny submission, its expected score)
CASES = {
    # By hand: a exact (1), b predicted on empty truth (0), c IoU 0.8 passes 6 of 10
    # thresholds (0.6), d empty prediction: the reference's quirk gives IoU 6000/10201 (0.2).
    "tgs-salt-identification-challenge": (
        pd.DataFrame({"id": ["a", "b", "c", "d"], "rle_mask": ["1 10", "", "1 5000", "1 6000"]}),
        "rle_mask",
        pd.DataFrame({"id": ["a", "b", "c", "d"], "rle_mask": ["1 10", "5 3", "1 4000", ""]}),
        0.45,
    ),
    # By hand: a overlaps 2 of 4 + 4 pixels (Dice 0.5), b exact (1).
    "hubmap-kidney-segmentation": (
        pd.DataFrame(
            {
                "id": ["a", "b"],
                "encoding": ["1 4", "2 3"],
                "width_pixels": [5, 5],
                "height_pixels": [4, 4],
            }
        ),
        "predicted",
        pd.DataFrame({"id": ["a", "b"], "predicted": ["3 4", "2 3"]}),
        0.75,
    ),
    # By hand: global Dice 2 * 2 / (6 + 4).
    "google-research-identify-contrails-reduce-global-warming": (
        pd.DataFrame(
            {
                "record_id": [11, 22],
                "encoded_pixels": ["1 4", "-"],
                "height": [4, 4],
                "width": [4, 4],
            }
        ),
        "encoded_pixels",
        pd.DataFrame({"record_id": [11, 22], "encoded_pixels": ["3 4", "1 2"]}),
        0.4,
    ),
    # By hand: tp = fp = fn = 2, F0.5 = 2.5 / 5.
    "vesuvius-challenge-ink-detection": (
        pd.DataFrame({"Id": ["a"], "Predicted": ["1 4"], "width": [4], "height": [3]}),
        "Predicted",
        pd.DataFrame({"Id": ["a"], "Predicted": ["3 4"]}),
        0.5,
    ),
    # From MLE-bench's grader on the same CSVs (0.657525512860841).
    "uw-madison-gi-tract-image-segmentation": (
        pd.DataFrame(
            {
                "id": UW_IDS,
                "class": UW_CLASSES,
                "predicted": ["1 4", None, "9 2", None, None, "5 6", None, None, None],
                "image_height": [4.0] * 9,
                "image_width": [4.0] * 9,
            }
        ),
        "predicted",
        pd.DataFrame(
            {
                "id": UW_IDS,
                "class": UW_CLASSES,
                "predicted": ["1 4", "13 1", None, None, None, "6 4", None, None, None],
            }
        ),
        0.657525512860841,
    ),
}
ID_COLUMN = {
    "tgs-salt-identification-challenge": "id",
    "hubmap-kidney-segmentation": "id",
    "google-research-identify-contrails-reduce-global-warming": "record_id",
    "vesuvius-challenge-ink-detection": "Id",
    "uw-madison-gi-tract-image-segmentation": "id",
}
ANSWER_MASK_COLUMN = {"hubmap-kidney-segmentation": "encoding"}


def grade(competition: str, submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    # The spec module itself, so that other competitions' modules need not import cleanly.
    module = importlib.import_module(
        f"services.grader.competitions.{competition.replace('-', '_')}"
    )
    assert module.SPEC.id == competition
    return module.SPEC.grade(csv_roundtrip(submission), csv_roundtrip(answers))


def perfect_submission(competition: str) -> pd.DataFrame:
    answers, column, tiny, _ = CASES[competition]
    perfect = tiny.copy()
    perfect[column] = answers[ANSWER_MASK_COLUMN.get(competition, column)].to_numpy()
    return perfect


@pytest.mark.parametrize("competition", CASES)
def test_tiny_case_scores_as_the_reference(competition):
    answers, _, tiny, expected = CASES[competition]
    assert grade(competition, tiny, answers) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("competition", CASES)
def test_perfect_submission_scores_one(competition):
    answers = CASES[competition][0]
    assert grade(competition, perfect_submission(competition), answers) == 1.0


@pytest.mark.parametrize("competition", CASES)
def test_row_order_does_not_matter(competition):
    answers, _, tiny, expected = CASES[competition]
    shuffled = tiny.iloc[::-1].reset_index(drop=True)
    assert grade(competition, shuffled, answers) == pytest.approx(expected, abs=1e-12)


def _invalid_variants(competition: str) -> dict[str, pd.DataFrame]:
    _, column, tiny, _ = CASES[competition]
    id_column = ID_COLUMN[competition]
    variants = {
        "missing column": tiny.drop(columns=[column]),
        "fewer rows": tiny.iloc[1:],
        "malformed mask": tiny.assign(**{column: ["1 x"] * len(tiny)}),
        "overlapping runs": tiny.assign(**{column: ["1 5 3 2"] * len(tiny)}),
    }
    wrong_ids = tiny.copy()
    wrong_ids[id_column] = wrong_ids[id_column].astype(object)
    wrong_ids.loc[0, id_column] = "not-an-id"
    variants["wrong id"] = wrong_ids
    if competition in (
        "google-research-identify-contrails-reduce-global-warming",
        "vesuvius-challenge-ink-detection",
    ):  # the only two whose reference rejects an empty cell (others read it as an empty mask)
        variants["empty cell"] = tiny.assign(**{column: [None] * len(tiny)})
    if competition in ("tgs-salt-identification-challenge", "vesuvius-challenge-ink-detection"):
        variants["extra column"] = tiny.assign(extra=1)  # their references want exact columns
    return variants


@pytest.mark.parametrize(
    ("competition", "variant"),
    [(c, v) for c in CASES for v in _invalid_variants(c)],
)
def test_invalid_submissions_are_rejected(competition, variant):
    answers = CASES[competition][0]
    with pytest.raises(InvalidSubmission) as raised:
        grade(competition, _invalid_variants(competition)[variant], answers)
    assert len(str(raised.value)) > 20


@pytest.mark.parametrize(
    "competition", ["hubmap-kidney-segmentation", "uw-madison-gi-tract-image-segmentation"]
)
def test_extra_columns_are_accepted_like_the_reference(competition):
    answers = CASES[competition][0]
    assert grade(competition, perfect_submission(competition).assign(extra=1), answers) == 1.0


def test_empty_cells_are_empty_masks_where_the_reference_fills_them():
    # By hand: only b (empty truth) scores 1; d gets 0.2 from the empty-prediction quirk.
    answers, _, tiny, _ = CASES["tgs-salt-identification-challenge"]
    assert grade("tgs-salt-identification-challenge", tiny.assign(rle_mask=None), answers) == 0.3


def test_odd_rle_is_rejected_although_the_reference_broadcasts_it():
    # Documented difference: MLE-bench's decoder accepts "5" and "1 3 5" by numpy broadcasting.
    answers, _, tiny, _ = CASES["hubmap-kidney-segmentation"]
    with pytest.raises(InvalidSubmission, match="pairs"):
        grade("hubmap-kidney-segmentation", tiny.assign(predicted=["1 3 5", "2 3"]), answers)


@pytest.mark.parametrize("competition", CASES)
def test_answer_values_never_appear_in_messages(competition):
    answers = CASES[competition][0]
    id_column = ID_COLUMN[competition]
    answers = answers.copy()
    answers[id_column] = answers[id_column].astype(str)
    answers.loc[answers[id_column] == answers[id_column].iloc[-1], id_column] = MARKER
    for variant in _invalid_variants(competition).values():
        variant = variant.copy()
        if id_column in variant:
            variant[id_column] = variant[id_column].astype(str)
        with pytest.raises(InvalidSubmission) as raised:
            grade(competition, variant, answers)
        assert MARKER not in str(raised.value)


def test_uw_madison_matches_rows_on_id_and_class():
    answers, _, tiny, expected = CASES["uw-madison-gi-tract-image-segmentation"]
    swapped = tiny.copy()
    swapped.loc[[0, 1], "class"] = ["small_bowel", "large_bowel"]  # masks now on other classes
    assert grade("uw-madison-gi-tract-image-segmentation", swapped, answers) != expected
    repeated = tiny.copy()
    repeated.loc[1, "class"] = "large_bowel"
    with pytest.raises(InvalidSubmission, match="repeat"):
        grade("uw-madison-gi-tract-image-segmentation", repeated, answers)


def test_large_masks_grade_without_decoding():
    # A 40k x 30k slide (1.2 gigapixels) would not fit decoded; runs keep it cheap.
    answers = pd.DataFrame(
        {
            "id": ["big"],
            "encoding": ["1 1000000 500000000 2000"],
            "width_pixels": [30000],
            "height_pixels": [40000],
        }
    )
    submission = pd.DataFrame({"id": ["big"], "predicted": ["1 500000"]})
    expected = 2 * 500000 / (500000 + 1002000)
    assert grade("hubmap-kidney-segmentation", submission, answers) == pytest.approx(expected)
