"""Detection metrics and competitions (SIIM COVID-19, VinBigData, Lyft 3D).

Expected values of the tiny cases come from MLE-bench's graders on the same CSVs (pandas
2.2.3, numpy 2.4, pycocotools 2.0.11, shapely 2.2, pyquaternion 0.9.9; VinBigData's grader
with its numpy-2 crash patched, see docs/grading.md); simpler ones are by hand.
"""

from __future__ import annotations

import importlib
import io

import numpy as np
import pandas as pd
import pytest

from services.grader.competitions.base import InvalidSubmission
from services.grader.metrics.boxes3d import (
    box_problems,
    class_average_precisions,
    convex_intersection_area,
    footprints,
    iou_matrix,
)
from services.grader.metrics.detection import (
    LabelledBoxes,
    coco_bbox_iou,
    corner_box_iou,
    voc_label_pairs,
)

MARKER = "SECRETMARK"


def csv_roundtrip(df: pd.DataFrame) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(df.to_csv(index=False)), float_precision="round_trip")


def grade(competition: str, submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    name = competition.replace("-", "_")
    name = f"comp_{name}" if name[0].isdigit() else name
    module = importlib.import_module(f"services.grader.competitions.{name}")
    assert module.SPEC.id == competition
    return module.SPEC.grade(csv_roundtrip(submission), csv_roundtrip(answers))


# --- metrics -----------------------------------------------------------------------------


def test_corner_box_iou():
    box = np.array([0.0, 0.0, 2.0, 2.0])
    others = np.array([[1.0, 0.0, 3.0, 2.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 2.0, 2.0]])
    assert corner_box_iou(box, others).tolist() == [2 / 6, 0.0, 1.0]
    # Python's max(a, nan) is a: a NaN corner of the truth box is silently skipped.
    nan_box = np.array([[np.nan, 0.0, 2.0, 2.0]])
    assert np.isnan(corner_box_iou(box, nan_box)[0]) or corner_box_iou(box, nan_box)[0] >= 0


def test_coco_iou_reads_boxes_as_xywh():
    dets = np.array([[0.0, 0.0, 2.0, 2.0]])
    gts = np.array([[1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 1.0, 1.0]])
    assert coco_bbox_iou(dets, gts).tolist() == [[1 / 7, 0.0]]


def test_voc_pairs_match_greedily_and_add_misses():
    truth = [LabelledBoxes(["a", "a"], [1.0, 1.0], np.array([[0, 0, 10, 10], [20, 20, 30, 30.0]]))]
    pred = [LabelledBoxes(["a", "a"], [0.4, 0.9], np.array([[0, 0, 10, 10], [1, 1, 10, 10.0]]))]
    y_true, y_score = voc_label_pairs(pred, truth, "a", min_iou=0.5)
    # 0.9 takes the first box, 0.4 finds it taken (FP), the second truth is a miss.
    assert (y_true, y_score) == ([1, 0, 1], [0.9, 0.4, 0.0])
    empty = [LabelledBoxes([], [], np.zeros((0, 4)))]
    assert voc_label_pairs(empty, empty, "a", 0.5) == ([0], [0.0])


def test_convex_intersection_area():
    square = np.array([[[0, 0], [2, 0], [2, 2], [0, 2.0]]])
    shifted = square + np.array([1.0, 1.0])
    assert convex_intersection_area(square, shifted)[0] == pytest.approx(1.0)
    diamond = np.array([[[1, -1], [3, 1], [1, 3], [-1, 1.0]]])  # clockwise-agnostic
    assert convex_intersection_area(square, diamond)[0] == pytest.approx(4.0)
    assert convex_intersection_area(square, square[:, ::-1])[0] == pytest.approx(4.0)
    far = square + 10.0
    assert convex_intersection_area(square, far)[0] == 0.0


def test_rotated_box_iou():
    box = np.array([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]])
    rotated = box.copy()
    rotated[0, 6] = np.pi / 4
    # A 2x2 square and the same square turned 45 degrees share an octagon of area
    # 8(sqrt2 - 1); both boxes are 2 high, so the volumes are 8 and the overlap 2 octagons.
    octagon = 8 * (np.sqrt(2) - 1)
    assert iou_matrix(box, rotated)[0, 0] == pytest.approx(2 * octagon / (16 - 2 * octagon))
    assert iou_matrix(box, box)[0, 0] == pytest.approx(1.0)
    raised = box.copy()
    raised[0, 2] = 1.0  # half the height overlaps
    assert iou_matrix(box, raised)[0, 0] == pytest.approx(4 / 12)


def test_footprint_corners_follow_the_devkit_order():
    corners = footprints(np.array([[0.0, 0.0, 0.0, 2.0, 4.0, 1.0, 0.0]]))[0]
    assert corners.tolist() == [[2.0, -1.0], [2.0, 1.0], [-2.0, 1.0], [-2.0, -1.0]]


def test_box_problems():
    params = np.array(
        [
            [0, 0, 0, 1, 1, 1, 0.0],
            [0, 0, 0, -1, 1, 1, 0.0],
            [0, 0, 0, 1, 1, 1, np.nan],
            [np.nan, 0, 0, 1, 1, 1, 0.0],
            [1e13, 0, 0, 1, 1, 1, 0.3],  # corners lose the right angle to rounding
        ]
    )
    problems = box_problems(params).tolist()
    assert problems[0] == ""
    assert all(problems[1:])


def test_class_average_precision_steps():
    ious = np.array([[0.9], [0.6]])
    aps = class_average_precisions(ious, [0.2, 0.8], n_truths=2, thresholds=np.array([0.5, 0.7]))
    # At 0.5: the 0.8 prediction (IoU 0.6) is TP, the 0.2 one finds the box taken: AP 0.5.
    # At 0.7: the 0.8 prediction misses, the 0.2 one hits: recall 0.5 at precision 0.5.
    assert aps.tolist() == [0.5, 0.25]


# --- competitions ------------------------------------------------------------------------

CASES = {
    "siim-covid19-detection": (
        pd.DataFrame(
            {
                "id": ["a_study", "b_study", "c_image", "d_image"],
                "PredictionString": [
                    "typical 1 0 0 1 1",
                    "negative 1 0 0 1 1",
                    "opacity 1 10 10 50 50 opacity 1 60 60 90 90",
                    "none 1 0 0 1 1",
                ],
            }
        ),
        pd.DataFrame(
            {
                "id": ["a_study", "b_study", "c_image", "d_image"],
                "PredictionString": [
                    "typical 0.9 0 0 1 1 negative 0.2 0 0 1 1",
                    "typical 0.6 0 0 1 1",
                    "opacity 0.8 12 12 50 50 opacity 0.7 0 0 20 20",
                    "opacity 0.4 0 0 5 5",
                ],
            }
        ),
        "id",
        0.5416666666666666,
    ),
    "vinbigdata-chest-xray-abnormalities-detection": (
        pd.DataFrame(
            {
                "image_id": ["p", "q", "q", "r"],
                "class_name": ["No finding", "A", "B", "A"],
                "class_id": [14, 0, 3, 0],
                "rad_id": ["R1"] * 4,
                "x_min": [0.0, 10.0, 50.0, 5.0],
                "y_min": [0.0, 10.0, 50.0, 5.0],
                "x_max": [1.0, 40.0, 90.0, 30.0],
                "y_max": [1.0, 40.0, 95.0, 30.0],
            }
        ),
        pd.DataFrame(
            {
                "image_id": ["p", "q", "r"],
                "PredictionString": [
                    "14 0.9 0 0 1 1 0 0.3 10 10 40 40",
                    "0 0.8 11 11 40 40 3 0.5 50 50 90 95",
                    "0 0.6 5 5 30 30 0 0.55 5 5 30 30",
                ],
            }
        ),
        "image_id",
        2 / 3,
    ),
    "3d-object-detection-for-autonomous-vehicles": (
        pd.DataFrame(
            {
                "Id": ["s1", "s2"],
                "PredictionString": [
                    "1.0 10.0 10.0 -18.0 2.0 4.0 1.5 0.3 car "
                    "1.0 20.0 10.0 -18.0 0.7 0.8 1.8 1.2 pedestrian",
                    "1.0 0.0 0.0 0.0 2.0 5.0 2.0 -0.5 car",
                ],
            }
        ),
        pd.DataFrame(
            {
                "Id": ["s1", "s2"],
                "PredictionString": [
                    "0.9 10.2 10.0 -18.0 2.0 4.0 1.5 0.3 car "
                    "0.5 20.0 10.0 -18.0 0.7 0.8 1.8 1.2 bus",
                    "0.8 0.0 0.0 0.0 2.0 5.0 2.0 -0.5 car 0.9 0.5 0.0 0.0 2.0 5.0 2.0 -0.5 car",
                ],
            }
        ),
        "Id",
        0.55,
    ),
}


def perfect_submission(competition: str) -> pd.DataFrame:
    answers = CASES[competition][0]
    if competition != "vinbigdata-chest-xray-abnormalities-detection":
        return answers.copy()
    rows = answers.apply(
        lambda r: f"{r.class_id} 1.0 {r.x_min} {r.y_min} {r.x_max} {r.y_max}", axis=1
    )
    return rows.groupby(answers["image_id"]).agg(" ".join).rename("PredictionString").reset_index()


@pytest.mark.parametrize("competition", CASES)
def test_tiny_case_scores_as_the_reference(competition):
    answers, tiny, _, expected = CASES[competition]
    assert grade(competition, tiny, answers) == pytest.approx(expected, abs=1e-12)
    shuffled = tiny.iloc[::-1].reset_index(drop=True)
    assert grade(competition, shuffled, answers) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("competition", "best"),
    [
        ("siim-covid19-detection", 1.0),
        ("3d-object-detection-for-autonomous-vehicles", 1.0),
        # pycocotools treats annotation id 0 as "unmatched", so the gold submission of the
        # reference loses the first truth box of class 14: (1/101*... ) -> 2/3 here, from the
        # reference itself.
        ("vinbigdata-chest-xray-abnormalities-detection", 2 / 3),
    ],
)
def test_gold_submission(competition, best):
    answers = CASES[competition][0]
    assert grade(competition, perfect_submission(competition), answers) == pytest.approx(best)


def test_vinbigdata_gold_scores_one_when_the_first_box_is_not_alone():
    answers = CASES["vinbigdata-chest-xray-abnormalities-detection"][0]
    answers = pd.concat([answers.iloc[[1]], answers]).reset_index(drop=True)
    answers.loc[0, ["x_min", "x_max"]] = [100.0, 130.0]  # a second box of class 0 on image q
    gold = perfect_submission("vinbigdata-chest-xray-abnormalities-detection")
    gold = pd.concat([gold.iloc[[1]], gold.drop(index=1)])  # detection id 0 hits truth id 0
    assert grade("vinbigdata-chest-xray-abnormalities-detection", gold, answers) < 1.0


def _invalid_variants(competition: str) -> dict[str, pd.DataFrame]:
    _, tiny, id_column, _ = CASES[competition]
    wrong_ids = tiny.copy()
    wrong_ids.loc[0, id_column] = "not-an-id"
    variants = {
        "missing column": tiny.drop(columns=["PredictionString"]),
        "missing id column": tiny.drop(columns=[id_column]),
        "fewer rows": tiny.iloc[1:],
        "wrong id": wrong_ids,
        "text in numbers": tiny.assign(PredictionString="a b c d e f g h i"[: 2 * 6 - 1]),
        "wrong value count": tiny.assign(PredictionString="1 2 3 4 5 6 7 8 9 10 11"),
    }
    if competition != "3d-object-detection-for-autonomous-vehicles":  # empty = no boxes there
        variants["empty cell"] = tiny.assign(PredictionString=None)
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


@pytest.mark.parametrize("competition", CASES)
def test_answer_values_never_appear_in_messages(competition):
    answers, _, id_column, _ = CASES[competition]
    answers = answers.copy()
    answers.loc[answers[id_column] == answers[id_column].iloc[-1], id_column] = MARKER
    for variant in _invalid_variants(competition).values():
        with pytest.raises(InvalidSubmission) as raised:
            grade(competition, variant, answers)
        assert MARKER not in str(raised.value)


def test_siim_nan_confidence_rejected_only_for_scored_labels():
    answers, tiny, _, _ = CASES["siim-covid19-detection"]
    scored = tiny.copy()
    scored.loc[3, "PredictionString"] = "none nan 0 0 1 1"
    with pytest.raises(InvalidSubmission, match="confidence"):
        grade("siim-covid19-detection", scored, answers)
    unscored = tiny.copy()
    unscored.loc[3, "PredictionString"] = "other nan 0 0 1 1 opacity 0.4 0 0 5 5"
    assert grade("siim-covid19-detection", unscored, answers) == pytest.approx(0.5416666666666666)


def test_lyft_checks_boxes_only_of_classes_in_the_truth():
    answers, tiny, _, _ = CASES["3d-object-detection-for-autonomous-vehicles"]
    bad_car = tiny.copy()
    bad_car.loc[1, "PredictionString"] += " 0.3 1 1 1 -2 2 2 0 car"
    with pytest.raises(InvalidSubmission, match="positive"):
        grade("3d-object-detection-for-autonomous-vehicles", bad_car, answers)
    bad_bus = tiny.copy()
    bad_bus.loc[1, "PredictionString"] += " 0.3 1 1 1 -2 2 2 0 bus"
    assert grade("3d-object-detection-for-autonomous-vehicles", bad_bus, answers) == 0.55


def test_vinbigdata_accepts_repeated_image_rows_like_the_reference():
    answers, tiny, _, expected = CASES["vinbigdata-chest-xray-abnormalities-detection"]
    split = pd.concat([tiny, tiny.iloc[[0]].assign(PredictionString="14 0.1 500 500 9 9")])
    assert grade("vinbigdata-chest-xray-abnormalities-detection", split, answers) <= expected
