"""Grading specs of the numeric group (regression, correlation, kappa, F-scores).

Each case builds tiny answers in the exact format of MLE-bench's prepared private answers and
checks that a perfect submission scores the metric's best value, that a small fixed submission
scores the number MLE-bench's own grader gives on the same data (computed once with the
reference on pandas 2.2 and hard-coded), and that broken submissions are rejected, or scored,
exactly where MLE-bench rejects or scores them, without quoting the answers.
"""

from __future__ import annotations

import importlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission

# Planted in the answers' last row; no rejection message may contain it unless the submission
# itself does.
SECRET = "97531"


@dataclass
class Case:
    answers: pd.DataFrame
    id_column: str  # the column varied to make id errors
    predictions: list[str]
    best: float
    tiny: dict[str, list]  # predicted columns of a fixed submission, in answers order
    tiny_score: float  # MLE-bench's score for `tiny`, rounded to 5 decimals
    nan: Any = "invalid"  # a NaN in the first prediction: "invalid" or MLE-bench's score
    keys: list[str] = field(default_factory=list)  # other columns a submission copies
    perfect_from: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    def perfect(self) -> pd.DataFrame:
        if self.perfect_from is not None:
            return self.perfect_from(self.answers)
        return self.answers[list(dict.fromkeys([self.id_column, *self.keys, *self.predictions]))]

    def tiny_submission(self) -> pd.DataFrame:
        return self.perfect().assign(**self.tiny)


def spec_for(cid: str) -> CompetitionSpec:
    """Loads the spec module by the naming rule (id lower-cased, '-' to '_')."""
    module = importlib.import_module(
        "services.grader.competitions." + cid.lower().replace("-", "_")
    )
    return module.SPEC


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the grading core reads it back from a CSV file."""
    text = frame.to_csv(index=False)
    if not text.strip():
        return pd.DataFrame()
    return pd.read_csv(io.StringIO(text), float_precision="round_trip")


def grade(cid: str, submission: pd.DataFrame, answers: pd.DataFrame | None = None) -> float:
    answers = CASES[cid].answers if answers is None else answers
    return spec_for(cid).grade(as_read(submission), as_read(answers))


def score(cid: str, submission: pd.DataFrame) -> float:
    """What the grading core reports: round() on the grader's own scalar type."""
    return round(grade(cid, submission), 5)


def _hexes(*tails: str) -> list[str]:
    return [f"0a1b2c3d4e5f{t}" for t in tails]


def _osic_answers() -> pd.DataFrame:
    rows = []
    measured = {
        "ID00007637202177411956430": [2315, np.nan, 2214, 2061, 2144],
        f"ID0001063720217758{SECRET}": [3660, 3610, np.nan, 3390, 3197],
    }
    for patient, fvcs in measured.items():
        for week, fvc in zip(range(-1, 4), fvcs, strict=True):
            rows.append(
                {
                    "Patient": patient,
                    "Weeks": week,
                    "FVC": fvc,
                    "Percent": 58.2,
                    "Age": 79,
                    "Sex": "Male",
                    "SmokingStatus": "Ex-smoker",
                    "Patient_Week": f"{patient}_{week}",
                    "Confidence": 100,
                }
            )
    return pd.DataFrame(rows)


def _quest_answers() -> pd.DataFrame:
    levels = [1 / 3, 0.5, 1.0, 2 / 3, 0.0]
    # Column j cycles through the levels from offset j, so no column is constant.
    grid = [[levels[(row + j) % 5] for j in range(len(QUEST_TARGETS))] for row in range(4)]
    frame = pd.DataFrame(grid, columns=QUEST_TARGETS)
    frame.insert(0, "qa_id", [39, 46, 70, int(SECRET)])
    return frame


QUEST_TARGETS = [
    *(
        "question_" + s
        for s in [
            "asker_intent_understanding",
            "body_critical",
            "conversational",
            "expect_short_answer",
            "fact_seeking",
            "has_commonly_accepted_answer",
            "interestingness_others",
            "interestingness_self",
            "multi_intent",
            "not_really_a_question",
            "opinion_seeking",
            "type_choice",
            "type_compare",
            "type_consequence",
            "type_definition",
            "type_entity",
            "type_instructions",
            "type_procedure",
            "type_reason_explanation",
            "type_spelling",
            "well_written",
        ]
    ),
    *(
        "answer_" + s
        for s in [
            "helpful",
            "level_of_information",
            "plausible",
            "relevance",
            "satisfaction",
            "type_instructions",
            "type_procedure",
            "type_reason_explanation",
            "well_written",
        ]
    ),
]

CASES: dict[str, Case] = {
    "new-york-city-taxi-fare-prediction": Case(
        pd.DataFrame(
            {
                "key": [
                    "2015-01-27 13:08:24.0000002",
                    "2013-08-15 07:01:00.00000190",
                    "2012-05-01 18:12:33.0000001",
                    f"2011-01-01 00:00:00.{SECRET}",
                ],
                "fare_amount": [12.5, 8.0, 4.9, 30.25],
                "pickup_datetime": "2015-01-27 13:08:24 UTC",
                "passenger_count": [1, 2, 1, 3],
            }
        ),
        "key",
        ["fare_amount"],
        0.0,
        {"fare_amount": [11.35, 11.35, 11.35, 11.35]},
        10.14098,
    ),
    "petfinder-pawpularity-score": Case(
        pd.DataFrame(
            {
                "Id": _hexes("0001", "0002", "0003", SECRET),
                "Eyes": [1, 0, 1, 1],
                "Pawpularity": [63, 42, 28, 15],
            }
        ),
        "Id",
        ["Pawpularity"],
        0.0,
        {"Pawpularity": [50.5, 1, 100, 20.25]},
        41.9786,
    ),
    "denoising-dirty-documents": Case(
        pd.DataFrame(
            {
                "id": ["1_1_1", "1_1_2", "1_2_1", "1_2_2", f"{SECRET}_1_1"],
                "value": [1.0, 0.9882352941176471, 0.3411764705882353, 1.0, 0.0],
            }
        ),
        "id",
        ["value"],
        0.0,
        {"value": [1, 1, 1, 1, 1]},
        0.53557,
    ),
    "predict-volcanic-eruptions-ingv-oe": Case(
        pd.DataFrame(
            {
                "segment_id": [1136037770, 1969647810, 1895879680, int(SECRET)],
                "time_to_eruption": [12262005, 32739612, 14965999, 4105325],
            }
        ),
        "segment_id",
        ["time_to_eruption"],
        0,
        {"time_to_eruption": [2e7, 2e7, 2e7, 2e7]},
        10351571,
    ),
    "champs-scalar-coupling": Case(
        pd.DataFrame(
            {
                "id": [4658147, 4658148, 4658149, 4658150, 4658151, int(SECRET)],
                "molecule_name": "dsgdb9nsd_000004",
                "atom_index_0": [2, 2, 2, 3, 3, 3],
                "atom_index_1": [0, 1, 3, 0, 1, 2],
                "type": ["2JHC", "1JHC", "3JHH", "1JHC", "2JHC", "3JHH"],
                "scalar_coupling_constant": [-0.32, 250.6, 12.1, 251.4, -1.02, 3.5],
            }
        ),
        "id",
        ["scalar_coupling_constant"],
        -math.inf,
        {"scalar_coupling_constant": [0, 240, 10, 260, 0, 3]},
        0.70788,
    ),
    "nomad2018-predict-transparent-conductors": Case(
        pd.DataFrame(
            {
                "id": [1, 2, 3, int(SECRET)],
                "spacegroup": [12, 33, 227, 167],
                "formation_energy_ev_natom": [0.068, 0.249, 0.1821, 0.0345],
                "bandgap_energy_ev": [3.4387, 2.921, 2.7438, 4.3044],
            }
        ),
        "id",
        ["formation_energy_ev_natom", "bandgap_energy_ev"],
        0.0,
        {"formation_energy_ev_natom": [0.1779] * 4, "bandgap_energy_ev": [1.8892] * 4},
        0.25445,
    ),
    "ventilator-pressure-prediction": Case(
        pd.DataFrame(
            {
                "id": [1, 2, 3, 4, 5, int(SECRET)],
                "breath_id": [85, 85, 85, 3, 3, 3],
                "R": 20,
                "C": 50,
                "time_step": [0.0, 0.0336, 0.0672, 0.0, 0.0331, 0.0663],
                "u_in": [0.08, 18.38, 22.5, 0.0, 7.5, 0.0],
                "u_out": [0, 0, 1, 0, 0, 1],
                "pressure": [5.837, 5.907, 7.876, 6.048, 11.04, 24.16],
            }
        ),
        "id",
        ["pressure"],
        0.0,
        {"pressure": [6, 6, 100, 6, 6, -100]},
        1.336,
    ),
    "osic-pulmonary-fibrosis-progression": Case(
        _osic_answers(),
        "Patient_Week",
        ["FVC", "Confidence"],
        -math.log(math.sqrt(2) * 70),
        {"FVC": [2500] * 10, "Confidence": [100, 50, 200, 300, np.nan, 100, 100, 250, 70, 5]},
        -14.65344,
        nan=-14.65344,  # the NaN lands in an unscored week, so it is never read
        # Weeks without a measurement need a prediction too; any value does.
        perfect_from=lambda a: a[["Patient_Week"]].assign(FVC=a["FVC"].fillna(2000), Confidence=70),
    ),
    "smartphone-decimeter-2022": Case(
        pd.DataFrame(
            {
                "tripId": ["2021-04-22-US-SJC-1-Pixel4"] * 3
                + ["2022-01-11-US-MTV-1-GooglePixel5"] * 3,
                "UnixTimeMillis": [
                    1619124000000,
                    1619124001000,
                    1619124002000,
                    1641924000000,
                    1641924001000,
                    int("16419240" + SECRET),
                ],
                "LatitudeDegrees": [37.4160, 37.4161, 37.4163, 37.3952, 37.3953, 37.3955],
                "LongitudeDegrees": [-122.0821, -122.0822, -122.0824, -122.1001, -122.1, -122.0999],
            }
        ),
        "UnixTimeMillis",
        ["LatitudeDegrees", "LongitudeDegrees"],
        0.0,
        {
            "LatitudeDegrees": [37.4161, 37.4161, 37.4161, 37.3953, 37.3953, 37.3953],
            "LongitudeDegrees": [-122.0822] * 3 + [-122.1] * 3,
        },
        19.58452,
        nan="nan",
        keys=["tripId"],
    ),
    "icecube-neutrinos-in-deep-ice": Case(
        pd.DataFrame(
            {
                "event_id": [24, 41, 59, int(SECRET)],
                "azimuth": [5.029555, 0.417742, 1.160466, 5.845952],
                "zenith": [2.087498, 1.549686, 2.401942, 0.759054],
            }
        ),
        "event_id",
        ["azimuth", "zenith"],
        0.0,
        {"azimuth": [1, 1, 1, 1], "zenith": [1, 1, 1, 1]},
        1.4136,
    ),
    "us-patent-phrase-to-phrase-matching": Case(
        pd.DataFrame(
            {
                "id": _hexes("37d6", "7b9f", "36d7", SECRET),
                "anchor": "abatement",
                "target": ["abatement of pollution", "act of abating", "active catalyst", "x"],
                "context": "A47",
                "score": [0.5, 0.75, 0.25, 0.0],
            }
        ),
        "id",
        ["score"],
        1.0,
        {"score": [0.1, 0.9, 0.4, 0.2]},
        0.65293,
        nan="nan",
    ),
    "google-quest-challenge": Case(
        _quest_answers(),
        "qa_id",
        QUEST_TARGETS,
        1.0,
        {
            t: [0.9, 0.1, 0.5, 0.3] if i % 2 else [0.2, 0.4, 0.4, 0.8]
            for i, t in enumerate(QUEST_TARGETS)
        },
        0.03162,
        nan="nan",
    ),
    "aptos2019-blindness-detection": Case(
        pd.DataFrame({"id_code": _hexes("a", "b", "c", "d", SECRET), "diagnosis": [0, 2, 4, 1, 3]}),
        "id_code",
        ["diagnosis"],
        1.0,
        {"diagnosis": [0, 1, 4, 1, 2.0]},
        0.9,
    ),
    "learning-agency-lab-automated-essay-scoring-2": Case(
        pd.DataFrame(
            {
                "essay_id": ["000d118", "000fe60", "001ab80", f"e{SECRET}"],
                "full_text": "Many people have car where they live, and so on.",
                "score": [3, 3, 4, 1],
            }
        ),
        "essay_id",
        ["score"],
        1.0,
        {"score": [2, 3, 5, 1]},
        0.85185,
    ),
    "nfl-player-contact-detection": Case(
        pd.DataFrame(
            {
                "contact_id": [
                    "58168_003392_0_38590_43854",
                    "58168_003392_0_38590_41257",
                    "58168_003392_0_38590_G",
                    "58168_003392_1_41257_44866",
                    f"58168_003392_1_{SECRET}_G",
                ],
                "game_play": "58168_003392",
                "datetime": "2020-09-11T03:01:48.100Z",
                "step": [0, 0, 0, 1, 1],
                "nfl_player_id_1": [38590, 38590, 38590, 41257, int(SECRET)],
                "nfl_player_id_2": ["43854", "41257", "G", "44866", "G"],
                "contact": [0, 1, 0, 1, 1],
            }
        ),
        "contact_id",
        ["contact"],
        1.0,
        {"contact": [0, 1, 1, 0, 1]},
        0.16667,
    ),
    "AI4Code": Case(
        pd.DataFrame(
            {
                "id": ["00001756c60be8", "00015c83e2717b", "0001bdd4021779", f"0001{SECRET}aaaaa"],
                "cell_order": [
                    "1862f0a6 448eb224 2a9e43d6 7e2f170a 038b763d",
                    "2e94bd7a 3e99dee9 b5e286ea",
                    "3fdc37be",
                    "d1a38a8b 0b2a1d9c 51b2bc2a 3f1c5ba2",
                ],
            }
        ),
        "id",
        ["cell_order"],
        1.0,
        {
            "cell_order": [
                "448eb224 1862f0a6 2a9e43d6 038b763d 7e2f170a",
                "b5e286ea 3e99dee9 2e94bd7a",
                "3fdc37be",
                "d1a38a8b 0b2a1d9c 3f1c5ba2 51b2bc2a",
            ]
        },
        0.36842,
    ),
    **{
        cid: Case(
            pd.DataFrame({"Id": [2, 0, 1, 3, int(SECRET)], "Predicted": [15, 7, 15, 3, 7]}),
            "Id",
            ["Predicted"],
            1.0,
            {"Predicted": [15, 7.9, 3, 3, 15]},  # 7.9 counts as 7, as int() truncates
            0.61111,
        )
        for cid in ("herbarium-2020-fgvc7", "herbarium-2021-fgvc8", "herbarium-2022-fgvc9")
    },
    "iwildcam-2019-fgvc6": Case(
        pd.DataFrame(
            {
                "Id": [
                    "5998cfa4-23d2-11e8-a6a3-ec086b02610b",
                    "588a679f-23d2-11e8-a6a3-ec086b02610b",
                    "59279ce3-23d2-11e8-a6a3-ec086b02610b",
                    f"{SECRET}ce3-23d2-11e8-a6a3-ec086b02610b",
                ],
                "Category": [19, 0, 0, 10],
            }
        ),
        "Id",
        ["Category"],
        1.0,
        {"Category": [19, 0, 10, 0]},
        0.5,
    ),
    "imet-2020-fgvc7": Case(
        pd.DataFrame(
            {
                "id": _hexes("10023b2cc4", "100fbe75ed", "101b627524", SECRET),
                "attribute_ids": ["233 813 1660", "51 1059", "13 405 1092 3192", "147"],
            }
        ),
        "id",
        ["attribute_ids"],
        1.0,
        {"attribute_ids": ["233 813 9999", "51 51", "", "147 1660"]},
        0.53333,
        nan=0.30769,
    ),
    "plant-pathology-2021-fgvc8": Case(
        pd.DataFrame(
            {
                "image": [
                    "800113bb65efe69e.jpg",
                    "8002cb321f8bfcdf.jpg",
                    "80070f7fb5e2ccaa.jpg",
                    f"{SECRET}7fb5e2ccaa.jpg",
                ],
                "labels": ["healthy", "scab frog_eye_leaf_spot complex", "scab", "rust"],
            }
        ),
        "image",
        ["labels"],
        1.0,
        {"labels": ["healthy", "scab complex", "rust", "healthy"]},
        0.54545,
        nan=0.4,
    ),
    "plant-seedlings-classification": Case(
        pd.DataFrame(
            {
                "file": ["0021e90e4.png", "003d61042.png", "007b3da8b.png", f"{SECRET}da8b.png"],
                "species": ["Sugar beet", "Black-grass", "Charlock", "Maize"],
            }
        ),
        "file",
        ["species"],
        1.0,
        {"species": ["Sugar beet", "Charlock", "Charlock", "Sugar beet"]},
        0.5,
        nan=0.25,
    ),
    "facebook-recruiting-iii-keyword-extraction": Case(
        pd.DataFrame(
            {
                "Id": [6034197, 6034198, 6034199, int(SECRET)],
                "Title": "How to use a lambda",
                "Body": "<p>Some body</p>",
                "Tags": ["c# linq", "java android", "php", "python django c++"],
            }
        ),
        "Id",
        ["Tags"],
        1.0,
        {"Tags": ["c# javascript", "java", "php mysql", "python"]},
        0.66667,
        nan=0.54545,
    ),
    "rsna-breast-cancer-detection": Case(
        pd.DataFrame(
            {
                "prediction_id": ["10006_L", "10006_R", "10011_L", f"{SECRET}_R"],
                "cancer": [0, 1, 0, 1],
            }
        ),
        "prediction_id",
        ["cancer"],
        1.0,
        {"cancer": [0.2, 0.8, -0.5, 1.7]},  # clipped to [0, 1]
        0.9,
        nan=0.0,
    ),
}

IDS = sorted(CASES)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


@pytest.mark.parametrize("cid", IDS)
def test_spec_is_registered_under_its_competition_id(cid):
    assert spec_for(cid).id == cid
    assert spec_for(cid).answers_format == "csv"


@pytest.mark.parametrize("cid", IDS)
def test_perfect_submission_scores_the_best_value(cid):
    case = CASES[cid]
    assert score(cid, case.perfect()) == pytest.approx(round(case.best, 5), abs=1e-9)


@pytest.mark.parametrize("cid", IDS)
def test_perfect_submission_scores_the_same_in_any_row_order(cid):
    case = CASES[cid]
    shuffled = case.perfect().iloc[::-1]
    assert score(cid, shuffled) == pytest.approx(round(case.best, 5), abs=1e-9)


@pytest.mark.parametrize("cid", IDS)
def test_fixed_submission_scores_as_mlebench(cid):
    case = CASES[cid]
    assert score(cid, case.tiny_submission()) == case.tiny_score


@pytest.mark.parametrize("cid", IDS)
def test_fixed_submission_scores_the_same_when_rows_are_reordered(cid):
    case = CASES[cid]
    reordered = case.tiny_submission().sample(frac=1, random_state=3)
    assert score(cid, reordered) == case.tiny_score


def _broken(case: Case) -> dict[str, pd.DataFrame]:
    """Submissions MLE-bench rejects (or that mleb rejects as a documented fix)."""
    base = case.tiny_submission()
    broken = {f"missing {c}": base.drop(columns=[c]) for c in (case.id_column, *case.predictions)}
    broken["one row short"] = base.iloc[:-1]
    broken["no rows"] = base.iloc[:0]
    broken["empty file"] = pd.DataFrame()
    unknown = base.copy()
    unknown[case.id_column] = unknown[case.id_column].astype(object)
    unknown.iloc[-1, unknown.columns.get_loc(case.id_column)] = "no-such-id"
    broken["unknown id"] = unknown
    repeated = base.copy()
    repeated.iloc[1, repeated.columns.get_loc(case.id_column)] = repeated.iloc[0][case.id_column]
    broken["repeated id"] = repeated
    if case.nan == "invalid":
        broken["NaN prediction"] = _with_first_prediction(case, base, np.nan)
    return broken


def _with_first_prediction(case: Case, frame: pd.DataFrame, value: Any) -> pd.DataFrame:
    frame = frame.copy()
    column = case.predictions[0]
    frame[column] = frame[column].astype(object)
    frame.iloc[0, frame.columns.get_loc(column)] = value
    return frame


BROKEN = [(cid, name) for cid in IDS for name in _broken(CASES[cid])]


@pytest.mark.parametrize(("cid", "variant"), BROKEN)
def test_broken_submission_is_rejected_with_a_reason(cid, variant):
    with pytest.raises(InvalidSubmission) as err:
        grade(cid, _broken(CASES[cid])[variant])
    assert str(err.value).strip()


@pytest.mark.parametrize(("cid", "variant"), BROKEN)
def test_rejection_never_quotes_the_answers(cid, variant):
    submission = _broken(CASES[cid])[variant]
    # Take out the row that holds the planted value, so the submission cannot contain it.
    submission = submission[
        ~submission.astype(str).apply(lambda c: c.str.contains(SECRET)).any(axis=1)
    ]
    assert SECRET not in submission.to_csv(index=False)
    with pytest.raises(InvalidSubmission) as err:
        grade(cid, submission)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("cid", IDS)
def test_nan_prediction_is_handled_as_mlebench_does(cid):
    case = CASES[cid]
    submission = _with_first_prediction(case, case.tiny_submission(), np.nan)
    if case.nan == "invalid":
        with pytest.raises(InvalidSubmission, match=r"NaN|empty|missing|cell|numeric"):
            grade(cid, submission)
    elif case.nan == "nan":
        assert _is_nan(score(cid, submission))
    else:
        assert score(cid, submission) == case.nan


@pytest.mark.parametrize("cid", IDS)
def test_every_case_plants_the_secret_in_its_answers(cid):
    # Keeps test_rejection_never_quotes_the_answers meaningful.
    assert SECRET in CASES[cid].answers.to_csv(index=False)


# Competition-specific rules, and the documented differences from MLE-bench
# (docs/grading.md).


def _tiny(cid: str, **columns) -> pd.DataFrame:
    return CASES[cid].tiny_submission().assign(**columns)


@pytest.mark.parametrize("cid", ["predict-volcanic-eruptions-ingv-oe", "champs-scalar-coupling"])
def test_a_repeated_row_is_rejected_rather_than_counted_twice(cid):
    # MLE-bench merges on the id, so a duplicate row silently weighs twice there.
    submission = CASES[cid].tiny_submission()
    with pytest.raises(InvalidSubmission, match="rows"):
        grade(cid, pd.concat([submission, submission.iloc[:1]]))


def test_volcano_score_is_a_whole_number():
    assert (
        score(
            "predict-volcanic-eruptions-ingv-oe",
            CASES["predict-volcanic-eruptions-ingv-oe"].tiny_submission(),
        )
        % 1
        == 0
    )


def test_nomad_pairs_rows_by_id_not_by_position():
    cid = "nomad2018-predict-transparent-conductors"
    in_order = CASES[cid].tiny_submission().assign(formation_energy_ev_natom=[0.1, 0.2, 0.3, 0.4])
    assert score(cid, in_order.iloc[::-1]) == score(cid, in_order)
    assert score(cid, in_order) != score(
        cid, in_order.assign(formation_energy_ev_natom=[0.4, 0.3, 0.2, 0.1])
    )


@pytest.mark.parametrize("value", [-1, -0.05, -1e-9])
def test_nomad_rejects_negative_values_as_the_reference_does(value):
    # MLE-bench's scikit-learn (1.5.2) refuses any negative value for RMSLE (observed: no score
    # for -0.05), though log(1 + value) exists above -1.
    with pytest.raises(InvalidSubmission, match="must not be negative"):
        grade(
            "nomad2018-predict-transparent-conductors",
            _tiny("nomad2018-predict-transparent-conductors", bandgap_energy_ev=value),
        )


def test_nomad_accepts_zero():
    cid = "nomad2018-predict-transparent-conductors"
    assert np.isfinite(score(cid, _tiny(cid, bandgap_energy_ev=0.0)))


def test_ventilator_ignores_the_expiratory_rows_entirely():
    cid = "ventilator-pressure-prediction"
    expiratory = CASES[cid].answers["u_out"].to_numpy() == 1
    base = CASES[cid].tiny_submission()
    blanked = base.assign(pressure=np.where(expiratory, np.nan, base["pressure"]))
    assert score(cid, blanked) == CASES[cid].tiny_score


def test_osic_scores_only_the_last_three_measured_weeks():
    cid = "osic-pulmonary-fibrosis-progression"
    answers = CASES[cid].answers
    unscored = answers["Weeks"].eq(-1).to_numpy()  # each patient's earliest week here
    base = CASES[cid].tiny_submission()
    changed = base.assign(FVC=np.where(unscored, 99999, base["FVC"]))
    assert score(cid, changed) == CASES[cid].tiny_score


def test_osic_treats_missing_confidence_as_the_minimum_sigma():
    cid = "osic-pulmonary-fibrosis-progression"
    base = CASES[cid].tiny_submission()
    assert score(cid, base.assign(Confidence=np.nan)) == score(cid, base.assign(Confidence=70))


def test_osic_rejects_unknown_patient_weeks_quoting_the_submission():
    cid = "osic-pulmonary-fibrosis-progression"
    base = CASES[cid].tiny_submission()
    base.iloc[0, 0] = "ID_nobody_12"
    with pytest.raises(InvalidSubmission, match="ID_nobody_12"):
        grade(cid, base)


def test_smartphone_pairs_rows_by_trip_and_timestamp():
    cid = "smartphone-decimeter-2022"
    reordered = CASES[cid].tiny_submission().iloc[[2, 0, 1, 5, 3, 4]]
    assert score(cid, reordered) == CASES[cid].tiny_score
    shifted = CASES[cid].tiny_submission().assign(UnixTimeMillis=lambda f: f["UnixTimeMillis"] + 1)
    with pytest.raises(InvalidSubmission, match="tripId@UnixTimeMillis"):
        grade(cid, shifted)


@pytest.mark.parametrize(
    ("cid", "extra"),
    [("icecube-neutrinos-in-deep-ice", "note"), ("google-quest-challenge", "category")],
)
def test_exact_column_set_is_required(cid, extra):
    with pytest.raises(InvalidSubmission, match="column"):
        grade(cid, CASES[cid].tiny_submission().assign(**{extra: 1}))


def test_icecube_rejects_boolean_angles():
    with pytest.raises(InvalidSubmission, match="numeric"):
        grade("icecube-neutrinos-in-deep-ice", _tiny("icecube-neutrinos-in-deep-ice", azimuth=True))


@pytest.mark.parametrize("value", [0, 100.5])
def test_pawpularity_must_lie_between_1_and_100(value):
    with pytest.raises(InvalidSubmission, match=r"\[1, 100\]"):
        grade(
            "petfinder-pawpularity-score", _tiny("petfinder-pawpularity-score", Pawpularity=value)
        )


@pytest.mark.parametrize(
    "cid",
    [
        "us-patent-phrase-to-phrase-matching",
        "petfinder-pawpularity-score",
        "rsna-breast-cancer-detection",
        "osic-pulmonary-fibrosis-progression",
        "smartphone-decimeter-2022",
        "icecube-neutrinos-in-deep-ice",
        "new-york-city-taxi-fare-prediction",
    ],
)
def test_text_predictions_are_rejected(cid):
    submission = _with_first_prediction(CASES[cid], CASES[cid].tiny_submission(), "high")
    with pytest.raises(InvalidSubmission, match="numeric"):
        grade(cid, submission)


def test_google_quest_ranks_text_the_way_mlebench_does():
    # MLE-bench's Spearman ranks any sortable values, text included; only NaN gives NaN.
    cid = "google-quest-challenge"
    target = QUEST_TARGETS[0]
    submission = _tiny(cid, **{target: ["b", "a", "d", "c"]})
    assert score(cid, submission) == 0.03721  # MLE-bench's grader on the same data


@pytest.mark.parametrize(
    "cid",
    [
        "aptos2019-blindness-detection",
        "learning-agency-lab-automated-essay-scoring-2",
        "nfl-player-contact-detection",
    ],
)
def test_class_predictions_must_be_whole_numbers(cid):
    column = CASES[cid].predictions[0]
    whole = CASES[cid].tiny_submission()
    assert (
        score(cid, whole.assign(**{column: whole[column].astype(float)})) == CASES[cid].tiny_score
    )
    fractional = _with_first_prediction(CASES[cid], whole, 1.5)
    with pytest.raises(InvalidSubmission, match="whole-number"):
        grade(cid, fractional)


def test_herbarium_converts_labels_with_int_like_mlebench():
    cid = "herbarium-2020-fgvc7"
    # Text labels go through int(): int("1_5") is 15, so this is the fixed submission again.
    as_text = _tiny(cid, Predicted=["1_5", "7", "3", "3", "15"])
    assert score(cid, as_text) == CASES[cid].tiny_score
    with pytest.raises(InvalidSubmission, match="integers"):
        grade(cid, _tiny(cid, Predicted=["1_5", "7.9", "3", "3", "15"]))  # int("7.9") fails


@pytest.mark.parametrize(
    "cid",
    ["imet-2020-fgvc7", "plant-pathology-2021-fgvc8", "facebook-recruiting-iii-keyword-extraction"],
)
def test_labels_never_seen_in_the_answers_are_ignored_like_mlebench(cid):
    column = CASES[cid].predictions[0]
    base = CASES[cid].tiny_submission()
    padded = base.assign(**{column: base[column] + " zz-not-a-label"})
    assert score(cid, padded) == CASES[cid].tiny_score


def test_imet_grades_a_column_of_single_numeric_labels():
    # pandas reads such a column as integers; MLE-bench then fails on `.str`, mleb grades it.
    cid = "imet-2020-fgvc7"
    singles = _tiny(cid, attribute_ids=[233, 51, 13, 147])
    # 4 of the 10 true labels predicted, no false ones: F1 = 2 * 4 / (10 + 4).
    assert score(cid, singles) == round(8 / 14, 5)


def test_rsna_scores_zero_when_every_prediction_clips_to_zero():
    # MLE-bench divides 0 by 0 in plain Python here and crashes; the defined value is 0.
    assert (
        score("rsna-breast-cancer-detection", _tiny("rsna-breast-cancer-detection", cancer=-0.5))
        == 0.0
    )


@pytest.mark.parametrize(
    ("cell_order", "reason"),
    [
        ("1862f0a6 448eb224 2a9e43d6 7e2f170a", "different number"),
        ("1862f0a6 448eb224 2a9e43d6 7e2f170a 7e2f170a", "unknown or repeated"),
        ("1862f0a6 448eb224 2a9e43d6 7e2f170a ffffffff", "unknown or repeated"),
    ],
)
def test_ai4code_requires_each_notebook_cell_exactly_once(cell_order, reason):
    cid = "AI4Code"
    submission = CASES[cid].tiny_submission()
    submission.iloc[0, submission.columns.get_loc("cell_order")] = cell_order
    with pytest.raises(InvalidSubmission, match=reason):
        grade(cid, submission)
