"""Grading specs of the AUC-family competitions, on synthetic answers in MLE-bench's formats.

Answers are built the way each competition's MLE-bench prepare.py writes its private answers
file (same columns and column order), then passed through a CSV round trip like the grading
core does, so dtypes match what the grader really sees.
"""

from __future__ import annotations

import importlib
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission

RANZCR_SCORED = [
    "ETT - Abnormal",
    "ETT - Borderline",
    "ETT - Normal",
    "NGT - Abnormal",
    "NGT - Borderline",
    "NGT - Incompletely Imaged",
    "NGT - Normal",
    "CVC - Abnormal",
    "CVC - Borderline",
]
RANZCR_UNSCORED = ["CVC - Normal", "Swan Ganz Catheter Present"]
JIGSAW = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
PLANT = ["healthy", "multiple_diseases", "rust", "scab"]


@dataclass(frozen=True)
class Format:
    """How one competition's answers look and what its grader accepts."""

    id_col: str
    labels: list[str]
    id_kind: str  # "int" or "str"
    # "probability": numbers in [0, 1] only; "finite": any finite number.
    scores: str = "probability"
    extra_columns_ok: bool = True
    # Answer columns besides id and labels, as (name, position); position -1 appends.
    other_columns: list[tuple[str, int]] = field(default_factory=list)


def _binary(id_col: str, label: str, id_kind: str, **kw) -> Format:
    return Format(id_col=id_col, labels=[label], id_kind=id_kind, **kw)


FORMATS: dict[str, Format] = {
    "aerial-cactus-identification": _binary("id", "has_cactus", "str"),
    # Answers columns are Insult, Date, Comment, Usage: the label comes first.
    "detecting-insults-in-social-commentary": _binary(
        "Comment", "Insult", "str", other_columns=[("Date", 1), ("Usage", -1)]
    ),
    "histopathologic-cancer-detection": _binary("id", "label", "str"),
    "invasive-species-monitoring": _binary("name", "invasive", "int"),
    "mlsp-2013-birds": _binary("Id", "Probability", "int"),
    "random-acts-of-pizza": _binary("request_id", "requester_received_pizza", "str"),
    "rsna-miccai-brain-tumor-radiogenomic-classification": _binary(
        "BraTS21ID", "MGMT_value", "int"
    ),
    "seti-breakthrough-listen": _binary("id", "target", "str"),
    "siim-isic-melanoma-classification": _binary("image_name", "target", "str"),
    "tabular-playground-series-may-2022": _binary(
        "id", "target", "int", other_columns=[("f_00", 1), ("f_27", 2)]
    ),
    "the-icml-2013-whale-challenge-right-whale-redux": _binary("clip", "probability", "str"),
    "ranzcr-clip-catheter-line-classification": Format(
        "StudyInstanceUID",
        RANZCR_SCORED,
        "str",
        other_columns=[(c, -1) for c in RANZCR_UNSCORED] + [("PatientID", -1)],
    ),
    "jigsaw-toxic-comment-classification-challenge": Format(
        "id", JIGSAW, "str", scores="finite", extra_columns_ok=False
    ),
    "plant-pathology-2020-fgvc7": Format(
        "image_id", PLANT, "str", scores="finite", extra_columns_ok=False
    ),
    "playground-series-s3e18": Format(
        "id",
        ["EC1", "EC2"],
        "int",
        scores="finite",
        other_columns=[("BertzCT", 1), ("EC3", -1), ("EC4", -1), ("EC5", -1), ("EC6", -1)],
    ),
    "alaska2-image-steganalysis": _binary("Id", "Label", "str", scores="finite"),
}
COMPETITIONS = sorted(FORMATS)
SECRET = "SECRET_ANSWER_ONLY"


def roundtrip(frame: pd.DataFrame) -> pd.DataFrame:
    """What the grading core hands a grader after reading a CSV file."""
    text = frame.to_csv(index=False)
    if not text.strip():
        return pd.DataFrame()
    return pd.read_csv(io.StringIO(text), float_precision="round_trip")


def make_ids(fmt: Format, n: int, rng: np.random.Generator, secret: bool = False) -> list:
    if fmt.id_kind == "int":
        ids = [int(v) for v in 1000 + rng.permutation(5 * n)[:n]]
        if secret:
            ids[0] = 987654321
        return ids
    ids = [f"r{v:05x}" for v in rng.permutation(10**5)[:n]]
    if secret:
        ids[0] = SECRET
    return ids


def make_labels(comp: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Label columns with both classes in every column (jigsaw: some unscored -1 rows)."""
    fmt = FORMATS[comp]
    if comp == "plant-pathology-2020-fgvc7":
        cls = np.concatenate([np.arange(4), np.arange(4), rng.integers(0, 4, n - 8)])
        return pd.DataFrame({c: (cls == j).astype(int) for j, c in enumerate(PLANT)})
    labels = pd.DataFrame(
        {c: np.r_[0, 1, (rng.random(n - 2) < 0.4).astype(int)] for c in fmt.labels}
    )
    if comp == "jigsaw-toxic-comment-classification-challenge":
        labels.iloc[-3:] = -1
    return labels


def make_answers(comp: str, n: int = 24, seed: int = 0, secret: bool = False) -> pd.DataFrame:
    fmt = FORMATS[comp]
    rng = np.random.default_rng(seed)
    answers = pd.concat(
        [pd.DataFrame({fmt.id_col: make_ids(fmt, n, rng, secret)}), make_labels(comp, n, rng)],
        axis=1,
    )
    for name, position in fmt.other_columns:
        values = rng.integers(0, 2, n) if name.startswith(("EC", "CVC", "Swan")) else "x"
        answers.insert(len(answers.columns) if position < 0 else position, name, values)
    return roundtrip(answers)


def submission_from(
    comp: str, answers: pd.DataFrame, scores: np.ndarray | None = None, seed: int = 1
) -> pd.DataFrame:
    """A well-formed submission in shuffled row order; perfect scores unless given."""
    fmt = FORMATS[comp]
    sub = answers[[fmt.id_col, *fmt.labels]].copy()
    if scores is None:
        # Unscored jigsaw rows (-1) get a neutral score.
        sub[fmt.labels] = (
            answers[fmt.labels].clip(lower=0).astype(float).where(answers[fmt.labels] >= 0, 0.5)
        )
    else:
        sub[fmt.labels] = scores
    return sub.sample(frac=1, random_state=seed).reset_index(drop=True)


def spec(comp: str) -> CompetitionSpec:
    # Imported directly (not via all_specs) so other groups' work in progress cannot break these.
    return importlib.import_module(f"services.grader.competitions.{comp.replace('-', '_')}").SPEC


def grade(comp: str, submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return spec(comp).grade(roundtrip(submission), answers)


@pytest.mark.parametrize("comp", COMPETITIONS)
def test_spec_module_is_named_after_the_competition(comp):
    assert spec(comp).id == comp
    assert spec(comp).answers_format == "csv"


@pytest.mark.parametrize("comp", COMPETITIONS)
def test_perfect_submission_scores_one(comp):
    answers = make_answers(comp)
    assert grade(comp, submission_from(comp, answers), answers) == pytest.approx(1.0)


@pytest.mark.parametrize("comp", COMPETITIONS)
def test_inverted_submission_scores_zero(comp):
    answers = make_answers(comp)
    perfect = submission_from(comp, answers, seed=0)
    inverted = perfect.assign(**{c: 1 - perfect[c] for c in FORMATS[comp].labels})
    assert grade(comp, inverted, answers) == pytest.approx(0.0)


@pytest.mark.parametrize("comp", COMPETITIONS)
def test_score_does_not_depend_on_row_order(comp):
    answers = make_answers(comp)
    scores = np.round(np.random.default_rng(5).random((24, len(FORMATS[comp].labels))), 1)
    in_order = submission_from(comp, answers, scores).sort_values(FORMATS[comp].id_col)
    shuffled = in_order.sample(frac=1, random_state=3)
    score = grade(comp, in_order, answers)
    assert 0.0 < score < 1.0
    assert grade(comp, shuffled, answers) == score


BINARY = [
    c for c in COMPETITIONS if len(FORMATS[c].labels) == 1 and c != "alaska2-image-steganalysis"
]


@pytest.mark.parametrize("comp", BINARY)
def test_binary_auc_hand_computed(comp):
    # Positives 0.35, 0.8, 0.9 vs negatives 0.1, 0.4, 0.5: 7 of 9 pairs ordered.
    fmt = FORMATS[comp]
    answers = make_answers(comp, n=6)
    answers[fmt.labels[0]] = [0, 0, 1, 1, 0, 1]
    scores = np.array([[0.1], [0.4], [0.35], [0.8], [0.5], [0.9]])
    sub = answers[[fmt.id_col]].assign(**{fmt.labels[0]: scores[:, 0]}).iloc[::-1]
    assert grade(comp, sub, answers) == pytest.approx(7 / 9)


# Tiny cases for the multi-column graders. Expected values were computed by running
# MLE-bench's own grade.py for each competition (pandas 2.2.3, scikit-learn 1.9.1) on exactly
# these answers and submissions.
REFERENCE_VALUES = {
    "ranzcr-clip-catheter-line-classification": 0.48700897867564524,
    "jigsaw-toxic-comment-classification-challenge": 0.3687500000000001,
    "plant-pathology-2020-fgvc7": 0.4357298951048951,
    "playground-series-s3e18": 0.7708333333333334,
    "alaska2-image-steganalysis": 0.8050000000000002,
}


def reference_case(comp: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    answers = make_answers(comp, n=16, seed=7)
    scores = np.round(np.random.default_rng(11).random((16, len(FORMATS[comp].labels))), 1)
    return submission_from(comp, answers, scores, seed=2), answers


@pytest.mark.parametrize("comp", sorted(REFERENCE_VALUES))
def test_matches_reference_value(comp):
    submission, answers = reference_case(comp)
    assert grade(comp, submission, answers) == pytest.approx(REFERENCE_VALUES[comp], abs=1e-12)


def _replace_first_id(sub: pd.DataFrame, id_col: str, new) -> pd.DataFrame:
    sub = sub.copy()
    sub[id_col] = sub[id_col].astype(object)
    sub.iloc[0, sub.columns.get_loc(id_col)] = new
    return sub


def _set_score(sub: pd.DataFrame, column: str, value) -> pd.DataFrame:
    sub = sub.copy()
    sub[column] = sub[column].astype(object)
    sub.iloc[2, sub.columns.get_loc(column)] = value
    return sub


# name -> (make a bad submission from a good one, text the message must contain)
INVALID_VARIANTS = {
    "missing id column": (lambda s, f: s.drop(columns=[f.id_col]), "missing required column"),
    "missing label column": (lambda s, f: s.drop(columns=[f.labels[-1]]), "missing required"),
    "fewer rows": (lambda s, f: s.iloc[:-1], "23 rows, but 24 are expected"),
    "more rows": (lambda s, f: pd.concat([s, s.iloc[:1]]), "25 rows, but 24 are expected"),
    "repeated id": (
        lambda s, f: _replace_first_id(s, f.id_col, s[f.id_col].iloc[1]),
        "repeat an id",
    ),
    "unknown id": (
        lambda s, f: _replace_first_id(s, f.id_col, "no_such_id"),
        "unexpected ids, e.g. 'no_such_id'",
    ),
    "NaN score": (lambda s, f: _set_score(s, f.labels[0], np.nan), "missing/NaN"),
    "text score": (lambda s, f: _set_score(s, f.labels[0], "high"), "'high'"),
    "infinite score": (lambda s, f: _set_score(s, f.labels[0], np.inf), "inf"),
    "empty file": (lambda s, f: s.iloc[0:0, 0:0], ""),
}


@pytest.mark.parametrize("variant", sorted(INVALID_VARIANTS))
@pytest.mark.parametrize("comp", COMPETITIONS)
def test_invalid_submissions_are_rejected_with_a_clear_message(comp, variant):
    make_bad, expected = INVALID_VARIANTS[variant]
    answers = make_answers(comp)
    bad = make_bad(submission_from(comp, answers), FORMATS[comp])
    with pytest.raises(InvalidSubmission) as err:
        grade(comp, bad, answers)
    assert expected in str(err.value)


@pytest.mark.parametrize("comp", COMPETITIONS)
def test_answer_values_never_appear_in_messages(comp):
    fmt = FORMATS[comp]
    answers = make_answers(comp, secret=True)
    secret = SECRET if fmt.id_kind == "str" else "987654321"
    assert secret in answers[fmt.id_col].astype(str).tolist()
    good = submission_from(comp, answers)
    # The submission never contains the secret: its row carries another id.
    without_secret = good[good[fmt.id_col].astype(str) != secret]
    replacement = "other_id" if fmt.id_kind == "str" else 123
    good = pd.concat(
        [without_secret, pd.DataFrame({fmt.id_col: [replacement]} | {c: [0.5] for c in fmt.labels})]
    )
    bad_submissions = [good] + [make_bad(good, fmt) for make_bad, _ in INVALID_VARIANTS.values()]
    for bad in bad_submissions:
        with pytest.raises(InvalidSubmission) as err:
            grade(comp, bad, answers)
        assert secret not in str(err.value)


@pytest.mark.parametrize("comp", COMPETITIONS)
def test_extra_columns_follow_the_reference(comp):
    answers = make_answers(comp)
    sub = submission_from(comp, answers).assign(notes="free text")
    if FORMATS[comp].extra_columns_ok:
        assert grade(comp, sub, answers) == pytest.approx(1.0)
    else:
        with pytest.raises(InvalidSubmission, match=r"unexpected column\(s\) \['notes'\]"):
            grade(comp, sub, answers)


@pytest.mark.parametrize("comp", COMPETITIONS)
def test_scores_outside_zero_one_follow_the_reference(comp):
    answers = make_answers(comp)
    perfect = submission_from(comp, answers)
    stretched = perfect.assign(**{c: perfect[c] * 10 - 3 for c in FORMATS[comp].labels})
    if FORMATS[comp].scores == "finite":
        # These graders pass scores straight to the AUC, which only uses their order.
        assert grade(comp, stretched, answers) == pytest.approx(1.0)
    else:
        with pytest.raises(InvalidSubmission, match=r"probabilities in \[0, 1\]"):
            grade(comp, stretched, answers)


@pytest.mark.parametrize("comp", COMPETITIONS)
def test_boolean_scores_are_accepted_as_zero_and_one(comp):
    # The reference accepts a column of True/False (pandas reads it as bool) as 1/0.
    answers = make_answers(comp)
    perfect = submission_from(comp, answers)
    as_bool = perfect.assign(**{c: perfect[c] > 0.5 for c in FORMATS[comp].labels})
    assert grade(comp, as_bool, answers) == pytest.approx(1.0)


INT_ID_COMPETITIONS = [c for c in COMPETITIONS if FORMATS[c].id_kind == "int"]


@pytest.mark.parametrize("comp", INT_ID_COMPETITIONS)
def test_integer_ids_written_as_floats_still_match(comp):
    # The reference compares ids by value, so "1003.0" matches 1003.
    answers = make_answers(comp)
    sub = submission_from(comp, answers)
    sub[FORMATS[comp].id_col] = sub[FORMATS[comp].id_col].astype(float)
    assert grade(comp, sub, answers) == pytest.approx(1.0)


def test_jigsaw_leaves_rows_labelled_minus_one_out():
    comp = "jigsaw-toxic-comment-classification-challenge"
    answers = make_answers(comp)
    unscored = answers["toxic"] < 0
    assert unscored.sum() == 3
    sub = submission_from(comp, answers).set_index("id")
    # Whatever those rows score, a perfect ranking of the others still scores 1.
    sub.loc[answers.loc[unscored, "id"], JIGSAW] = [[9.0] * 6, [-9.0] * 6, [0.0] * 6]
    assert grade(comp, sub.reset_index(), answers) == pytest.approx(1.0)


def test_jigsaw_scores_columns_by_name_not_position():
    # Intentional difference: the reference scores the columns in file order.
    comp = "jigsaw-toxic-comment-classification-challenge"
    submission, answers = reference_case(comp)
    reordered = submission[["id", *JIGSAW[::-1]]]
    assert grade(comp, reordered, answers) == pytest.approx(REFERENCE_VALUES[comp], abs=1e-12)


def test_jigsaw_rejects_nan_even_in_unscored_rows():
    # Intentional difference: the reference only sees scored rows, so its verdict would tell
    # an agent which rows are unscored, which is answer information.
    comp = "jigsaw-toxic-comment-classification-challenge"
    answers = make_answers(comp)
    sub = submission_from(comp, answers).set_index("id")
    sub.loc[answers.loc[answers["toxic"] < 0, "id"].iloc[0], "toxic"] = np.nan
    with pytest.raises(InvalidSubmission, match="missing/NaN"):
        grade(comp, sub.reset_index(), answers)


def test_ranzcr_scores_nine_columns_like_the_reference():
    comp = "ranzcr-clip-catheter-line-classification"
    answers = make_answers(comp)
    sub = submission_from(comp, answers)
    # The two columns MLE-bench leaves out are neither required nor scored.
    assert not set(RANZCR_UNSCORED) & set(sub.columns)
    assert grade(comp, sub, answers) == pytest.approx(1.0)
    wrong_extra = sub.assign(**{c: 1.0 for c in RANZCR_UNSCORED})
    assert grade(comp, wrong_extra, answers) == pytest.approx(1.0)


def test_large_submission_is_graded_vectorised():
    # 300k rows in reverse order: slow per-row code would show up as a very slow test.
    comp = "tabular-playground-series-may-2022"
    n = 300_000
    answers = pd.DataFrame({"id": np.arange(n), "target": np.arange(n) % 2})
    scores = (np.arange(n) % 2) * 0.5 + np.linspace(0, 0.4, n)
    sub = pd.DataFrame({"id": np.arange(n)[::-1], "target": scores[::-1]})
    assert spec(comp).grade(sub, answers) == pytest.approx(1.0)
