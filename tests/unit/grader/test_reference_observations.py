"""Small cases run on MLE-bench's own graders (783b15a) under pandas 2.2.3, numpy 1.26.4 and
scikit-learn 1.5.2 (pycocotools 2.0.11, shapely 2.2.0, pyquaternion 0.9.9), with the outcome
the reference gave. mleb must give the same validity and the same score to 5 decimals; each
case backs a statement in docs/grading.md. The harness that ran the reference lives outside
this repository; it built its inputs with `CASES` below.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from services.grader.competitions import get_spec
from services.grader.competitions.base import Float64Score
from services.grader.competitions.freesound_audio_tagging_2019 import CLASS_NAMES
from services.grader.metrics.subgroup_auc import power_mean
from services.grader.reading import read_answers, read_submission
from services.grader.scoring import score_frame

pd.set_option("mode.copy_on_write", True)

INVALID = None
NAN = math.nan


def _csv(header: str, rows: list[tuple]) -> str:
    return header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n"


def _q(text: str) -> str:
    return f'"{text}"'


# vinbigdata: 5 truth boxes over 3 images; the first truth box (annotation id 0) is im1's class 0.
_VIN_TRUTH = [
    ("im1", "Aortic enlargement", 0, "R1", 10, 10, 60, 70),
    ("im1", "Cardiomegaly", 3, "R1", 100, 120, 300, 260),
    ("im2", "Aortic enlargement", 0, "R2", 20, 30, 80, 90),
    ("im2", "Nodule/Mass", 8, "R2", 200, 200, 230, 240),
    ("im3", "No finding", 14, "R3", 0, 0, 1, 1),
]
_VIN_ANSWERS = _csv("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max", _VIN_TRUTH)


def _vin(extra: dict[str, list[tuple]] | None = None, conf: float = 1.0) -> str:
    """Every truth box detected at `conf`, then the `extra` detections, image by image."""
    boxes: dict[str, list[tuple]] = {}
    for image, _, cls, _, *corners in _VIN_TRUTH:
        boxes.setdefault(image, []).append((cls, conf, *corners))
    for image, more in (extra or {}).items():
        boxes[image] = boxes[image] + more
    rows = [(k, _q(" ".join(" ".join(map(str, b)) for b in v))) for k, v in boxes.items()]
    return _csv("image_id,PredictionString", rows)


# Lyft 3D: sample a has a car and a pedestrian, sample b a truck; c's truth is blank.
_CAR = [1.0, 2000.5, 650.25, -19.0, 1.9, 4.6, 1.7, 0.6, "car"]
_PED = [1.0, 2010.0, 640.0, -19.2, 0.7, 0.8, 1.8, -1.2, "pedestrian"]
_TRUCK = [1.0, 2050.0, 600.0, -18.5, 2.5, 9.0, 3.2, 2.9, "truck"]


def _boxes(*boxes: list) -> str:
    return _q(" ".join(" ".join(map(str, b)) for b in boxes))


def _moved(box: list, dx: float, conf: float) -> list:
    return [conf, box[1] + dx, *box[2:]]


_LYFT_ANSWERS = _csv("Id,PredictionString", [("a", _boxes(_CAR, _PED)), ("b", _boxes(_TRUCK))])
_LYFT_BLANK = _csv(
    "Id,PredictionString", [("a", _boxes(_CAR, _PED)), ("b", _boxes(_TRUCK)), ("c", _q(" "))]
)
_ODD_CLASS = [0.9, 1, 2, 3, -4, 0, 1, 0.1, "bicycle_xyz"]

# jigsaw unintended bias: per identity, a toxic and a non-toxic row mentioning it, plus
# four background rows; predictions fixed by a formula.
_IDENTITIES = [
    "male",
    "female",
    "homosexual_gay_or_lesbian",
    "christian",
    "jewish",
    "muslim",
    "black",
    "white",
    "psychiatric_or_mental_illness",
]
_JUB_ROWS = []
for _k in range(9):
    for _tox in (0.8, 0.1, 0.6, 0.3):
        _JUB_ROWS.append((_tox, *[0.7 if j == _k else 0.0 for j in range(9)]))
_JUB_ROWS += [(t, *[0.0] * 9) for t in (0.9, 0.2, 0.7, 0.0)]
_JUB_ANSWERS = _csv(
    "id,toxicity," + ",".join(_IDENTITIES), [(7000 + i, *r) for i, r in enumerate(_JUB_ROWS)]
)
_JUB_PRED = [round((i * 37 % 100) / 100, 2) for i in range(len(_JUB_ROWS))]


def _jub(preds: list, column: str = "prediction") -> str:
    return _csv(f"id,{column}", [(7000 + i, p) for i, p in enumerate(preds)])


# freesound: rows 0-3 carry labels, rows 4 and 5 none.
_FS = "freesound-audio-tagging-2019"
_FS_HEADER = "fname," + ",".join(_q(c) if "," in c else c for c in CLASS_NAMES)
_FS_TRUTH = [[0] * 80 for _ in range(6)]
for _row, _col in ((0, 3), (1, 3), (1, 10), (2, 5), (3, 70)):
    _FS_TRUTH[_row][_col] = 1
_FS_ANSWERS = _csv(_FS_HEADER, [(f"f{i}.wav", *t) for i, t in enumerate(_FS_TRUTH)])
_FS_SCORES = [[round(((r * 80 + c) * 7919 % 1000) / 1000, 3) for c in range(80)] for r in range(6)]


def _fs(row: int = -1, value: object = None) -> str:
    scores = [list(s) for s in _FS_SCORES]
    if row >= 0:
        scores[row][7] = value
    return _csv(_FS_HEADER, [(f"f{i}.wav", *s) for i, s in enumerate(scores)])


_SP = "spaceship-titanic"
_SP_SUB = _csv("PassengerId,Transported", [(f"{i:04d}_01", i % 3 == 0) for i in range(200)])

CASES: list[tuple[str, str, str, str, float | None]] = [
    # name, competition, submission, answers, the reference's outcome
    ("vinbig gold", "vinbigdata-chest-xray-abnormalities-detection", _vin(), _VIN_ANSWERS, 0.81312),
    (
        # Detection id 0 (im2's class-0 box) leaves its truth box unused, so the repeat at a
        # lower confidence is a second true positive.
        "vinbig first detection repeated lower",
        "vinbigdata-chest-xray-abnormalities-detection",
        _csv(
            "image_id,PredictionString",
            [
                ("im2", _q("0 0.9 20 30 80 90 0 0.8 20 30 80 90 8 1.0 200 200 230 240")),
                ("im1", _q("0 1.0 10 10 60 70 3 1.0 100 120 300 260")),
                ("im3", _q("14 1.0 0 0 1 1")),
            ],
        ),
        _VIN_ANSWERS,
        0.91667,
    ),
    (
        "vinbig gold .5 + false positive .99",
        "vinbigdata-chest-xray-abnormalities-detection",
        _vin({"im1": [(3, 0.99, 500, 500, 550, 600)]}, conf=0.5),
        _VIN_ANSWERS,
        0.68812,
    ),
    (
        "vinbig gold .5 + negative-area false positive .99",
        "vinbigdata-chest-xray-abnormalities-detection",
        _vin({"im1": [(3, 0.99, 500, 500, 450, 600)]}, conf=0.5),
        _VIN_ANSWERS,
        0.81312,
    ),
    (
        "lyft gold",
        "3d-object-detection-for-autonomous-vehicles",
        _csv("Id,PredictionString", [("b", _boxes(_TRUCK)), ("a", _boxes(_CAR, _PED))]),
        _LYFT_ANSWERS,
        1.0,
    ),
    (
        "lyft moved boxes",
        "3d-object-detection-for-autonomous-vehicles",
        _csv(
            "Id,PredictionString",
            [
                ("a", _boxes(_moved(_CAR, 0.3, 0.9), _moved(_PED, 0.1, 0.4))),
                ("b", _boxes(_moved(_TRUCK, 1.0, 0.7))),
            ],
        ),
        _LYFT_ANSWERS,
        0.475,
    ),
    (
        "lyft gold + absent class with a negative size",
        "3d-object-detection-for-autonomous-vehicles",
        _csv(
            "Id,PredictionString",
            [("a", _boxes(_CAR, _PED, _ODD_CLASS)), ("b", _boxes(_TRUCK, _ODD_CLASS))],
        ),
        _LYFT_ANSWERS,
        1.0,
    ),
    (
        "lyft blank truth",
        "3d-object-detection-for-autonomous-vehicles",
        _csv(
            "Id,PredictionString",
            [("a", _boxes(_CAR, _PED)), ("b", _boxes(_TRUCK)), ("c", _boxes(_CAR))],
        ),
        _LYFT_BLANK,
        NAN,
    ),
    (
        "jigsaw unintended",
        "jigsaw-unintended-bias-in-toxicity-classification",
        _jub(_JUB_PRED),
        _JUB_ANSWERS,
        0.27456,
    ),
    (
        "jigsaw unintended, same sides of 0.5",
        "jigsaw-unintended-bias-in-toxicity-classification",
        _jub([0.99 if p >= 0.5 else 0.01 for p in _JUB_PRED], column="toxicity"),
        _JUB_ANSWERS,
        0.27456,
    ),
    (
        "jigsaw unintended, NaN in row 2",
        "jigsaw-unintended-bias-in-toxicity-classification",
        _jub(["" if i == 2 else p for i, p in enumerate(_JUB_PRED)]),
        _JUB_ANSWERS,
        0.25267,
    ),
    (
        "jigsaw unintended, 0 in row 2",
        "jigsaw-unintended-bias-in-toxicity-classification",
        _jub([0 if i == 2 else p for i, p in enumerate(_JUB_PRED)]),
        _JUB_ANSWERS,
        0.25267,
    ),
    ("freesound", _FS, _fs(), _FS_ANSWERS, 0.05379),
    ("freesound NaN, unlabelled row", _FS, _fs(4, ""), _FS_ANSWERS, 0.05379),
    ("freesound inf, unlabelled row", _FS, _fs(5, "inf"), _FS_ANSWERS, 0.05379),
    ("freesound NaN, labelled row", _FS, _fs(0, ""), _FS_ANSWERS, INVALID),
    ("freesound -inf, labelled row", _FS, _fs(2, "-inf"), _FS_ANSWERS, INVALID),
    # One 30x30 image, truth 639 pixels, one predicted pixel inside: Dice 2/640 = 0.003125,
    # which the reference's float64 rounds to 0.00312 (a Python float rounds to 0.00313).
    (
        "hubmap Dice 0.003125",
        "hubmap-kidney-segmentation",
        _csv("id,predicted", [("img1", _q("1 1"))]),
        _csv("id,encoding,width_pixels,height_pixels", [("img1", _q("1 639"), 30, 30)]),
        0.00312,
    ),
    # NUL bytes are data to pandas' reader: where they land decides validity (issue 16).
    ("NUL at every line end", _SP, _SP_SUB.replace("\n", "\x00\n"), _SP_SUB, 1.0),
    ("NUL in one value", _SP, _SP_SUB.replace("True", "Tr\x00ue", 1), _SP_SUB, 0.0),
    ("1000 NUL after the end", _SP, _SP_SUB + "\x00" * 1000, _SP_SUB, INVALID),
    (
        "NUL in the header",
        _SP,
        _SP_SUB.replace("Transported", "T\x00ransported", 1),
        _SP_SUB,
        INVALID,
    ),
    ("NUL in one id", _SP, _SP_SUB.replace("0003_01", "0003\x00_01", 1), _SP_SUB, INVALID),
    ("NUL before every value", _SP, _SP_SUB.replace(",", ",\x00"), _SP_SUB, INVALID),
]


@pytest.mark.parametrize(
    ("name", "competition", "submission", "answers", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_same_outcome_as_the_reference(
    name: str, competition: str, submission: str, answers: str, expected: float | None
) -> None:
    spec = get_spec(competition)
    parsed = read_submission(io.BytesIO(submission.encode()))
    outcome = score_frame(spec, parsed, read_answers(answers.encode(), spec.answers_format))
    if expected is None:
        assert outcome.score is None, outcome
    elif math.isnan(expected):
        assert outcome.score is not None and math.isnan(outcome.score), outcome
    else:
        assert outcome.score == expected, outcome


def test_power_mean_with_a_zero_auc_is_zero() -> None:
    # The jigsaw unintended-bias cases above have a subgroup whose AUC is 0: the reference's
    # float64 power mean is then 0 (inf ** (1/p)), not an error.
    assert power_mean([0.0, 0.5, 1.0], -5) == 0.0
    assert power_mean([0.5, 0.5], -5) == pytest.approx(0.5)


# Competitions whose MLE-bench score is a numpy float64 under its pinned libraries although
# mleb's metric returns a Python float (observed by grading one valid submission of each on
# the reference and recording the type its Grader returned).
REFERENCE_FLOAT64 = [
    "3d-object-detection-for-autonomous-vehicles",
    "aerial-cactus-identification",
    "alaska2-image-steganalysis",
    "aptos2019-blindness-detection",
    "chaii-hindi-and-tamil-question-answering",
    "denoising-dirty-documents",
    "detecting-insults-in-social-commentary",
    "facebook-recruiting-iii-keyword-extraction",
    "freesound-audio-tagging-2019",
    "google-research-identify-contrails-reduce-global-warming",
    "herbarium-2020-fgvc7",
    "herbarium-2021-fgvc8",
    "herbarium-2022-fgvc9",
    "histopathologic-cancer-detection",
    "hms-harmful-brain-activity-classification",
    "hubmap-kidney-segmentation",
    "imet-2020-fgvc7",
    "invasive-species-monitoring",
    "iwildcam-2019-fgvc6",
    "jigsaw-toxic-comment-classification-challenge",
    "learning-agency-lab-automated-essay-scoring-2",
    "mlsp-2013-birds",
    "new-york-city-taxi-fare-prediction",
    "nfl-player-contact-detection",
    "nomad2018-predict-transparent-conductors",
    "petfinder-pawpularity-score",
    "plant-pathology-2020-fgvc7",
    "plant-pathology-2021-fgvc8",
    "plant-seedlings-classification",
    "playground-series-s3e18",
    "random-acts-of-pizza",
    "ranzcr-clip-catheter-line-classification",
    "rsna-2022-cervical-spine-fracture-detection",
    "rsna-miccai-brain-tumor-radiogenomic-classification",
    "seti-breakthrough-listen",
    "siim-covid19-detection",
    "siim-isic-melanoma-classification",
    "stanford-covid-vaccine",
    "tabular-playground-series-may-2022",
    "tensorflow2-question-answering",
    "tgs-salt-identification-challenge",
    "the-icml-2013-whale-challenge-right-whale-redux",
    "uw-madison-gi-tract-image-segmentation",
    "ventilator-pressure-prediction",
    "vesuvius-challenge-ink-detection",
    "vinbigdata-chest-xray-abnormalities-detection",
]


@pytest.mark.parametrize("competition", REFERENCE_FLOAT64)
def test_score_is_float64_where_the_reference_is(competition: str) -> None:
    spec = get_spec(competition)
    assert spec.float64_score
    assert isinstance(spec.grade, Float64Score)


def test_float64_score_hands_back_float64() -> None:
    score = Float64Score(lambda submission, answers: 0.003125)(None, None)
    assert type(score) is np.float64
    assert round(score, 5) == 0.00312
