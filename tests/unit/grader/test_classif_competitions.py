"""Grading of the accuracy / log-loss / probabilistic-classification competitions.

Each case builds tiny answers in MLE-bench's private answers format, a perfect submission and a
"tiny" submission whose score was computed with MLE-bench's own grade.py (pandas 2.2.3,
scikit-learn 1.9.1) on exactly this data and hard-coded here. Answers carry secret markers
(an id or label only the answers hold) that must never reach an InvalidSubmission message.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from services.grader.competitions.base import InvalidSubmission

SECRET_ID = "SECRET-7f3a"
SECRET_NUM = 987654321


def grade(competition: str, submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    module = __import__(
        "services.grader.competitions." + competition.replace("-", "_"), fromlist=["SPEC"]
    )
    assert module.SPEC.id == competition
    return module.SPEC.grade(_csv(submission), _csv(answers))


def _csv(frame: pd.DataFrame) -> pd.DataFrame:
    """Round-trip through CSV, as the grading core reads both files."""
    text = frame.to_csv(index=False)
    return pd.read_csv(io.StringIO(text), float_precision="round_trip")


@dataclass
class Case:
    answers: pd.DataFrame
    perfect: pd.DataFrame
    best: float
    tiny: pd.DataFrame
    tiny_score: float
    id_column: str
    value_columns: list[str]
    secret: str  # appears in the answers only
    nan_rejected: bool = True
    # A reordering of the tiny submission (default: reversed); repeated ids keep their order.
    shuffle: list[int] | None = None


def _with(frame: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column].astype(object)
    out.iloc[row, out.columns.get_loc(column)] = value
    return out


# --- accuracy family --------------------------------------------------------------------


def _label_case(
    id_column: str,
    target: str,
    ids: list,
    labels: list,
    guesses: list,
    score: float,
    secret: str,
    answers_extra: dict | None = None,
    nan_rejected: bool = True,
) -> Case:
    answers = pd.DataFrame({id_column: ids, **(answers_extra or {}), target: labels})
    perfect = answers[[id_column, target]].iloc[::-1]
    tiny = pd.DataFrame({id_column: ids, target: guesses})
    return Case(answers, perfect, 1.0, tiny, score, id_column, [target], secret, nan_rejected)


IDS = ["a.jpg", "b.jpg", "c.jpg", SECRET_ID + ".jpg"]
NUM_IDS = [10, 11, 12, SECRET_NUM]

CASES: dict[str, Case] = {
    # Accuracy scores below are k/4 by hand; MLE-bench's grade.py gives the same.
    "cassava-leaf-disease-classification": _label_case(
        "image_id", "label", IDS, [0, 1, 2, 3], [0, 1, 4, 4], 0.5, SECRET_ID
    ),
    "cdiscount-image-classification-challenge": _label_case(
        "_id",
        "category_id",
        NUM_IDS,
        [1000010653, 1000010654, 5, 6],
        [1000010653, 1, 5, 6],
        0.75,
        str(SECRET_NUM),
    ),
    "iwildcam-2020-fgvc7": _label_case(
        "Id",
        "Category",
        ["x1", "x2", "x2", SECRET_ID],
        [3, 0, 5, SECRET_NUM],
        [3, 0, 5, 1],
        0.75,
        str(SECRET_NUM),
    ),
    "ml2021spring-hw2": _label_case(
        "Id", "ClassId", [0, 1, 2, 3], [5, 6, 7, SECRET_NUM], [5, 0, 0, 0], 0.25, str(SECRET_NUM)
    ),
    "movie-review-sentiment-analysis-kernels-only": _label_case(
        "PhraseId",
        "Sentiment",
        NUM_IDS,
        [0, 1, 2, 4],
        [0, 1, 2, 3],
        0.75,
        SECRET_ID,
        {"SentenceId": [1, 1, 2, 2], "Phrase": ["good", "bad", SECRET_ID, "ok"]},
    ),
    "spaceship-titanic": _label_case(
        "PassengerId",
        "Transported",
        ["0001_01", "0002_01", "0003_02", "0004_01"],
        [True, False, True, True],
        [True, True, True, False],
        0.5,
        SECRET_ID,
        {"HomePlanet": ["Earth", SECRET_ID, "Mars", "Europa"], "Age": [39.0, 24.0, 58.0, 33.0]},
    ),
    "tabular-playground-series-dec-2021": _label_case(
        "Id",
        "Cover_Type",
        NUM_IDS,
        [1, 2, 3, 7],
        [1, 2, 2, 2],
        0.5,
        str(SECRET_NUM),
        {"Elevation": [3189, 3026, 3106, 3022]},
    ),
    "tensorflow-speech-recognition-challenge": _label_case(
        "fname",
        "label",
        ["clip_00000000.wav", "clip_00000001.wav", "clip_00000002.wav", "c"],
        ["yes", "no", "silence", SECRET_ID],
        ["yes", "no", "unknown", "unknown"],
        0.5,
        SECRET_ID,
    ),
    # Text is compared as text: NaN submitted where the answer is NaN ("nan") counts as right.
    "text-normalization-challenge-english-language": _label_case(
        "id",
        "after",
        ["0_0", "0_1", "1_0", "1_1"],
        ["the", "twelve", None, SECRET_ID],
        ["the", "12", None, "x"],
        0.5,
        SECRET_ID,
        nan_rejected=False,
    ),
    "text-normalization-challenge-russian-language": _label_case(
        "id",
        "after",
        ["0_0", "0_1", "1_0", "1_1"],
        ["и", "двенадцать", "2", SECRET_ID],
        ["и", "двенадцать", "2", "x"],
        0.75,
        SECRET_ID,
        nan_rejected=False,
    ),
    # A missing label is an empty string (wrong), not an error: 2 right of 4.
    "paddy-disease-classification": _label_case(
        "image_id",
        "label",
        IDS,
        ["normal", "blast", "hispa", SECRET_ID],
        ["normal", "blast", None, "normal"],
        0.5,
        SECRET_ID,
        {"variety": ["ADT45"] * 4},
        nan_rejected=False,
    ),
    # Top-1 error: the first of several space-separated ids counts; 1 wrong of 4.
    "inaturalist-2019-fgvc6": _label_case(
        "id",
        "predicted",
        NUM_IDS,
        [5, 6, 7, SECRET_NUM],
        ["5 1 2", "6", "7 7", "8"],
        0.25,
        str(SECRET_NUM),
    ),
}
CASES["inaturalist-2019-fgvc6"].best = 0.0
# Repeated ids (an image annotated twice) pair in order of appearance.
CASES["iwildcam-2020-fgvc7"].perfect = CASES["iwildcam-2020-fgvc7"].answers[["Id", "Category"]]
CASES["iwildcam-2020-fgvc7"].shuffle = [3, 1, 0, 2]


# --- log-loss family ----------------------------------------------------------------------


def _one_hot_case(classes: list[str], tiny_score: float) -> Case:
    ids = ["id1", "id2", "id3", SECRET_ID]
    truth = [0, 1, 2, 0]
    answers = pd.DataFrame(np.eye(len(classes), dtype=int)[truth], columns=classes)
    answers.insert(0, "id", ids)
    tiny = pd.DataFrame([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.0, 0.5, 0.5]])
    tiny.columns = classes
    tiny.insert(0, "id", ids)
    return Case(
        answers,
        answers.iloc[::-1],
        2.220446049250313e-16,
        tiny,
        tiny_score,
        "id",
        classes,
        SECRET_ID,
    )


# By hand: -(ln .5 + ln .8 + ln .6 + ln eps) / 4 with eps = 2.22e-16 (a clipped 0).
ONE_HOT_TINY = -(np.log(0.5) + np.log(0.8) + np.log(0.6) + np.log(np.finfo(float).eps)) / 4
CASES["dog-breed-identification"] = _one_hot_case(
    ["affenpinscher", "beagle", "collie"], ONE_HOT_TINY
)
CASES["leaf-classification"] = _one_hot_case(
    ["Acer_Mono", "Alnus_Rubra", "Quercus_Rubra"], ONE_HOT_TINY
)
# MLE-bench's grade.py on this data: 9.367692436189325 (= ONE_HOT_TINY)
CASES["spooky-author-identification"] = _one_hot_case(["EAP", "HPL", "MWS"], 9.367692436189325)
_lmsys = _one_hot_case(["winner_model_a", "winner_model_b", "winner_tie"], ONE_HOT_TINY)
_lmsys.answers.insert(1, "prompt", ['["hi"]', f'["{SECRET_ID}"]', '["x"]', '["y"]'])
CASES["lmsys-chatbot-arena"] = _lmsys


def _binary_case(target: str, ids: list, tiny_score: float, secret: str) -> Case:
    answers = pd.DataFrame({"id": ids, target: [1, 0, 1, 0]})
    tiny = pd.DataFrame({"id": ids, target: [0.9, 0.2, 0.5, 0.5]})
    return Case(
        answers, answers.iloc[::-1], 2.220446049250313e-16, tiny, tiny_score, "id", [target], secret
    )


# By hand: -(ln .9 + ln .8 + 2 ln .5) / 4 = 0.4271..., equal to MLE-bench's grade.py.
BINARY_TINY = -(np.log(0.9) + np.log(0.8) + 2 * np.log(0.5)) / 4
CASES["dogs-vs-cats-redux-kernels-edition"] = _binary_case(
    "label", [1, 2, 3, SECRET_NUM], BINARY_TINY, str(SECRET_NUM)
)
CASES["statoil-iceberg-classifier-challenge"] = _binary_case(
    "is_iceberg", ["5941774d", "4023181e", "b20200e4", SECRET_ID], BINARY_TINY, SECRET_ID
)


def _rsna_case() -> Case:
    targets = ["patient_overall", "C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    studies = ["1.2.826.0.1.3680043.6200", f"1.2.826.0.1.{SECRET_NUM}"]
    rows = [(s, t) for s in studies for t in targets]
    fractured = [1, 0, 1, 0, 0, 0, 0, 0] + [0] * 8
    answers = pd.DataFrame(
        {
            "StudyInstanceUID": [s for s, _ in rows],
            "prediction_type": [t for _, t in rows],
            "fractured": fractured,
            "row_id": [f"{s}_{t}" for s, t in rows],
        }
    )
    perfect = answers[["row_id", "fractured"]].iloc[::-1]
    tiny = answers[["row_id"]].assign(fractured=[0.8, 0.1, 0.6] + [0.5] * 13)
    # MLE-bench's grade.py on this data: 0.5219544399251652
    return Case(
        answers,
        perfect,
        9.992007221626415e-16,
        tiny,
        0.5219544399251652,
        "row_id",
        ["fractured"],
        str(SECRET_NUM),
    )


CASES["rsna-2022-cervical-spine-fracture-detection"] = _rsna_case()

HMS_VOTES = ["seizure_vote", "lpd_vote", "gpd_vote", "lrda_vote", "grda_vote", "other_vote"]


def _hms_case() -> Case:
    votes = np.array([[3, 0, 0, 0, 0, 1], [0, 2, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0]])
    eeg = [SECRET_NUM, 42, 42]  # eeg_id repeats in the answers
    answers = pd.DataFrame({"eeg_id": eeg, "expert_consensus": ["Seizure", "LPD", SECRET_ID]})
    answers[HMS_VOTES] = votes
    perfect = answers[["eeg_id"]].copy()
    perfect[HMS_VOTES] = votes / votes.sum(axis=1, keepdims=True)
    tiny = answers[["eeg_id"]].copy()
    tiny[HMS_VOTES] = 1 / 6
    # MLE-bench's grade.py on this data: 1.373265360835137
    case = Case(
        answers, perfect, 0.0, tiny, 1.373265360835137, "eeg_id", HMS_VOTES, str(SECRET_NUM)
    )
    case.shuffle = [1, 0, 2]
    return case


CASES["hms-harmful-brain-activity-classification"] = _hms_case()

COVID_TARGETS = ["reactivity", "deg_Mg_pH10", "deg_pH10", "deg_Mg_50C", "deg_50C"]


def _covid_case() -> Case:
    ids = ["id_001f94081_0", "id_001f94081_1", "id_001f94081_2", f"id_{SECRET_NUM}_0"]
    answers = pd.DataFrame({"id_seqpos": ids})
    answers[COVID_TARGETS] = [
        [0.5, 1.0, 2.0, 0.25, 3.0],
        [1.5, 0.0, 1.0, 0.75, 1.0],
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [2.0, 1.0, 1.0, 1.0, 1.0],
    ]
    answers["keep"] = [True, True, False, True]
    perfect = answers[["id_seqpos", *COVID_TARGETS]].iloc[::-1]
    tiny = answers[["id_seqpos"]].copy()
    tiny[COVID_TARGETS] = 1.0
    # Unscored row 3 may hold anything, even NaN (MLE-bench scores only `keep` rows).
    tiny.loc[2, "reactivity"] = np.nan
    # MLE-bench's grade.py on this data: 0.5802975049879372
    return Case(
        answers,
        perfect,
        0.0,
        tiny,
        0.5802975049879372,
        "id_seqpos",
        ["reactivity", "deg_Mg_pH10", "deg_Mg_50C"],
        str(SECRET_NUM),
    )


CASES["stanford-covid-vaccine"] = _covid_case()

COMPETITIONS = sorted(CASES)


# --- tests ----------------------------------------------------------------------------------


def test_every_competition_of_the_group_has_a_case():
    assert len(COMPETITIONS) == 21


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_perfect_submission_scores_best(competition):
    case = CASES[competition]
    assert grade(competition, case.perfect, case.answers) == pytest.approx(case.best, abs=1e-12)


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_tiny_submission_scores_as_mle_bench(competition):
    case = CASES[competition]
    assert grade(competition, case.tiny, case.answers) == pytest.approx(case.tiny_score, abs=1e-12)


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_row_order_does_not_matter(competition):
    case = CASES[competition]
    shuffled = case.tiny.iloc[case.shuffle] if case.shuffle else case.tiny.iloc[::-1]
    assert grade(competition, shuffled, case.answers) == pytest.approx(case.tiny_score)


def _invalid_variants(case: Case) -> dict[str, tuple[pd.DataFrame, str]]:
    """name -> (submission, a fragment the message must contain)."""
    sub, idc, value = case.tiny, case.id_column, case.value_columns[0]
    secret_row = (
        next(i for i, v in enumerate(case.answers[idc].astype(str)) if case.secret in v)
        if case.answers[idc].astype(str).str.contains(case.secret).any()
        else len(sub) - 1
    )
    variants = {
        "missing value column": (sub.drop(columns=[value]), value),
        "missing id column": (sub.drop(columns=[idc]), idc),
        "fewer rows": (sub.drop(index=sub.index[secret_row]), "rows"),
        "unknown id": (_with(sub, idc, secret_row, "zz-unknown"), "zz-unknown"),
    }
    if case.nan_rejected:
        variants["NaN value"] = (_with(sub, value, 0, np.nan), value)
    return variants


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_invalid_submissions_are_rejected_without_leaking_answers(competition):
    case = CASES[competition]
    for name, (submission, fragment) in _invalid_variants(case).items():
        with pytest.raises(InvalidSubmission) as info:
            grade(competition, submission, case.answers)
        message = str(info.value)
        assert fragment in message, (name, message)
        assert case.secret not in message, (name, message)
        assert SECRET_ID not in message and str(SECRET_NUM) not in message, (name, message)


def test_duplicate_id_is_rejected():
    case = CASES["cassava-leaf-disease-classification"]
    submission = _with(case.tiny, "image_id", 1, "a.jpg")
    with pytest.raises(InvalidSubmission, match="repeat an id"):
        grade("cassava-leaf-disease-classification", submission, case.answers)


@pytest.mark.parametrize(
    ("competition", "column", "value"),
    [
        ("cassava-leaf-disease-classification", "label", 1.5),  # not a class id
        ("tensorflow-speech-recognition-challenge", "label", np.nan),
        ("inaturalist-2019-fgvc6", "predicted", "bird 5"),
        ("inaturalist-2019-fgvc6", "predicted", 2.5),
        ("dogs-vs-cats-redux-kernels-edition", "label", 1.5),
        ("statoil-iceberg-classifier-challenge", "is_iceberg", "x"),
        ("rsna-2022-cervical-spine-fracture-detection", "fractured", -0.1),
        ("stanford-covid-vaccine", "deg_Mg_50C", "x"),
    ],
)
def test_bad_prediction_values_are_rejected(competition, column, value):
    case = CASES[competition]
    with pytest.raises(InvalidSubmission, match=column):
        grade(competition, _with(case.tiny, column, 0, value), case.answers)


# Labels of the other kind than the answers' (text against integer or boolean classes, numbers
# against text classes). MLE-bench's scikit-learn (1.5.2) scores them 0.0 (a valid submission)
# unless both sides have at most two distinct labels, where it raises TypeError (no score).
# Observed with MLE-bench's grade.py on exactly these inputs (pandas 2.2.3, numpy 1.26.4).
@pytest.mark.parametrize(
    ("competition", "column", "values"),
    [
        ("cassava-leaf-disease-classification", "label", ["blast", "b", "c", "d"]),
        ("cassava-leaf-disease-classification", "label", ["blast", None, None, None]),
        ("movie-review-sentiment-analysis-kernels-only", "Sentiment", ["neutral", "good"] * 2),
        ("tabular-playground-series-dec-2021", "Cover_Type", ["spruce", "pine", "pine", "fir"]),
        ("paddy-disease-classification", "label", [7, 8, 9, 1]),
        ("spaceship-titanic", "Transported", ["x", None, None, None]),  # x, True, False
    ],
)
def test_labels_of_the_wrong_type_score_zero_as_in_the_reference(competition, column, values):
    case = CASES[competition]
    submission = case.tiny
    for row, value in enumerate(values):
        if value is not None:
            submission = _with(submission, column, row, value)
    assert grade(competition, submission, case.answers) == 0.0


def test_two_labels_of_the_wrong_type_against_two_classes_are_rejected():
    # Both sides binary: the reference's scikit-learn raises TypeError (no score).
    case = CASES["spaceship-titanic"]
    submission = case.tiny.assign(Transported=["yes", "no", "no", "yes"])
    with pytest.raises(InvalidSubmission, match="Transported"):
        grade("spaceship-titanic", submission, case.answers)


@pytest.mark.parametrize(
    ("competition", "column", "value", "score"),
    [
        # Values MLE-bench still scores (checked against its grade.py): integral floats and
        # numeric text compare equal to integer classes, 0/1 to booleans.
        ("cassava-leaf-disease-classification", "label", 0.0, 0.5),
        ("spaceship-titanic", "Transported", 1, 0.5),
        ("tensorflow-speech-recognition-challenge", "label", 1, 0.25),
        ("paddy-disease-classification", "label", 7, 0.25),
        ("stanford-covid-vaccine", "deg_pH10", "not scored", 0.5802975049879372),
    ],
)
def test_odd_but_gradable_values_score_like_mle_bench(competition, column, value, score):
    case = CASES[competition]
    submission = case.tiny.copy()
    if competition == "spaceship-titanic":
        submission[column] = submission[column].astype(int)
    else:
        submission = _with(submission, column, 0, value)
    assert grade(competition, submission, case.answers) == pytest.approx(score)


@pytest.mark.parametrize(
    "competition",
    [
        "dog-breed-identification",
        "leaf-classification",
        "spooky-author-identification",
        "lmsys-chatbot-arena",
        "hms-harmful-brain-activity-classification",
    ],
)
def test_probability_rows_must_sum_to_one(competition):
    case = CASES[competition]
    column = case.value_columns[1]
    submission = case.tiny.copy()
    submission[column] = submission[column] + 0.01
    with pytest.raises(InvalidSubmission, match="sum to 1"):
        grade(competition, submission, case.answers)


def test_sum_tolerances_follow_each_competition():
    dog = CASES["dog-breed-identification"]
    ok = dog.tiny.copy()
    ok["beagle"] = ok["beagle"] + 5e-7  # np.isclose(atol=1e-6) accepts
    assert grade("dog-breed-identification", ok, dog.answers) > 0
    lmsys = CASES["lmsys-chatbot-arena"]
    off = lmsys.tiny.copy()
    off["winner_tie"] = off["winner_tie"] + 6e-7  # rounds to 1.000001 at 6 decimals
    with pytest.raises(InvalidSubmission, match="sum to 1"):
        grade("lmsys-chatbot-arena", off, lmsys.answers)


def test_leaf_rejects_extra_columns_but_dog_breed_ignores_them():
    leaf, dog = CASES["leaf-classification"], CASES["dog-breed-identification"]
    with pytest.raises(InvalidSubmission, match="unexpected column"):
        grade("leaf-classification", leaf.tiny.assign(note="x"), leaf.answers)
    assert grade("dog-breed-identification", dog.tiny.assign(note="x"), dog.answers) == (
        pytest.approx(ONE_HOT_TINY)
    )


def test_spooky_needs_exactly_four_columns_with_id_first():
    case = CASES["spooky-author-identification"]
    with pytest.raises(InvalidSubmission, match="exactly 4"):
        grade("spooky-author-identification", case.tiny.assign(note=0.0), case.answers)
    with pytest.raises(InvalidSubmission, match="'id'"):
        grade("spooky-author-identification", case.tiny[["EAP", "id", "HPL", "MWS"]], case.answers)
    reordered = case.tiny[["id", "MWS", "EAP", "HPL"]]
    assert grade("spooky-author-identification", reordered, case.answers) == pytest.approx(
        case.tiny_score
    )


def test_hms_extra_columns_count_as_probabilities():
    case = CASES["hms-harmful-brain-activity-classification"]
    assert grade(
        "hms-harmful-brain-activity-classification", case.tiny.assign(extra=0.0), case.answers
    ) == pytest.approx(case.tiny_score)
    with pytest.raises(InvalidSubmission, match="extra"):
        grade(
            "hms-harmful-brain-activity-classification", case.tiny.assign(extra=0.1), case.answers
        )


def test_covid_scores_only_kept_rows_and_needs_unscored_columns():
    case = CASES["stanford-covid-vaccine"]
    with pytest.raises(InvalidSubmission, match="deg_50C"):
        grade("stanford-covid-vaccine", case.tiny.drop(columns="deg_50C"), case.answers)
    changed = case.tiny.copy()
    changed.loc[2, ["deg_Mg_pH10", "deg_Mg_50C"]] = 100.0  # row 2 is not kept
    assert grade("stanford-covid-vaccine", changed, case.answers) == pytest.approx(case.tiny_score)


def test_large_accuracy_input_is_graded_vectorised():
    n = 200_000
    rng = np.random.default_rng(0)
    answers = pd.DataFrame({"Id": np.arange(n), "Cover_Type": rng.integers(1, 8, n)})
    submission = answers.sample(frac=1, random_state=0)
    submission["Cover_Type"] = np.where(submission["Id"] % 4 == 0, 0, submission["Cover_Type"])
    module = __import__(
        "services.grader.competitions.tabular_playground_series_dec_2021", fromlist=["SPEC"]
    )
    assert module.SPEC.grade(submission, answers) == 0.75
