"""Small-image classification: which digit is in an 8x8 greyscale image? (scikit-learn's
bundled copy of the UCI optical recognition of handwritten digits test set; graded by
accuracy.) Laid out like Kaggle's digit-recognizer: one pixel per column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_digits

from services.builtin.definition import KEY, Definition, Task
from services.builtin.folder import write_competition


def _rows() -> pd.DataFrame:
    data = load_digits()
    frame = pd.DataFrame(data.data.astype(int), columns=[f"pixel{i}" for i in range(64)])
    frame["label"] = data.target.astype(int)
    frame[KEY] = [f"row{i}" for i in range(len(frame))]
    return frame


DEFINITION = Definition(
    id="handwritten-digits",
    name="Handwritten Digits (8x8)",
    metric="accuracy",
    lower_is_better=False,
    category="Image Classification",
    task=Task.MULTICLASS,
    id_column="ImageId",
    target_column="label",
    test_fraction=0.25,
    rows=_rows,
    source="scikit-learn's bundled copy of the UCI optical recognition of handwritten digits data",
    first_id=1,
)


def build(dest: Path) -> Path:
    return write_competition(DEFINITION, dest)
