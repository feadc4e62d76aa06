"""Freesound Audio Tagging 2019: label-weighted label-ranking average precision (lwlrap) of
per-class scores (higher is better). Answers: `fname` then one 0/1 column per class, in the
order of CLASS_NAMES; submissions must have exactly these columns in this order."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import (
    align_on_ids,
    rejected_by_metric,
    to_numeric_array,
)
from services.grader.metrics.ranking import label_weighted_lrap

# The 80 sound classes of the competition, in the column order of its sample submission.
CLASS_NAMES = (
    "Accelerating_and_revving_and_vroom",
    "Accordion",
    "Acoustic_guitar",
    "Applause",
    "Bark",
    "Bass_drum",
    "Bass_guitar",
    "Bathtub_(filling_or_washing)",
    "Bicycle_bell",
    "Burping_and_eructation",
    "Bus",
    "Buzz",
    "Car_passing_by",
    "Cheering",
    "Chewing_and_mastication",
    "Child_speech_and_kid_speaking",
    "Chink_and_clink",
    "Chirp_and_tweet",
    "Church_bell",
    "Clapping",
    "Computer_keyboard",
    "Crackle",
    "Cricket",
    "Crowd",
    "Cupboard_open_or_close",
    "Cutlery_and_silverware",
    "Dishes_and_pots_and_pans",
    "Drawer_open_or_close",
    "Drip",
    "Electric_guitar",
    "Fart",
    "Female_singing",
    "Female_speech_and_woman_speaking",
    "Fill_(with_liquid)",
    "Finger_snapping",
    "Frying_(food)",
    "Gasp",
    "Glockenspiel",
    "Gong",
    "Gurgling",
    "Harmonica",
    "Hi-hat",
    "Hiss",
    "Keys_jangling",
    "Knock",
    "Male_singing",
    "Male_speech_and_man_speaking",
    "Marimba_and_xylophone",
    "Mechanical_fan",
    "Meow",
    "Microwave_oven",
    "Motorcycle",
    "Printer",
    "Purr",
    "Race_car_and_auto_racing",
    "Raindrop",
    "Run",
    "Scissors",
    "Screaming",
    "Shatter",
    "Sigh",
    "Sink_(filling_or_washing)",
    "Skateboard",
    "Slam",
    "Sneeze",
    "Squeak",
    "Stream",
    "Strum",
    "Tap",
    "Tick-tock",
    "Toilet_flush",
    "Traffic_noise_and_roadway_noise",
    "Trickle_and_dribble",
    "Walk_and_footsteps",
    "Water_tap_and_faucet",
    "Waves_and_surf",
    "Whispering",
    "Writing",
    "Yell",
    "Zipper_(clothing)",
)
COLUMNS = ["fname", *CLASS_NAMES]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    if list(submission.columns) != COLUMNS:
        raise InvalidSubmission(
            "Submission columns must be 'fname' followed by the 80 class columns in the sample "
            f"submission's order; got {len(submission.columns)} column(s) starting with "
            f"{list(submission.columns[:3])}."
        )
    sub, ans = align_on_ids(submission, answers, "fname")
    scores = to_numeric_array(sub, list(CLASS_NAMES))
    # Rows without any true class drop out of lwlrap, so only NaN/inf elsewhere fail (in
    # scikit-learn, as in MLE-bench).
    with rejected_by_metric("Submission has NaN or infinite class scores."):
        return label_weighted_lrap(ans[list(CLASS_NAMES)].to_numpy(), scores)


SPEC = CompetitionSpec(
    id="freesound-audio-tagging-2019",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
