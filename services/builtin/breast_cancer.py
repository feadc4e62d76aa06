"""Tabular binary classification: is a breast mass malignant? (scikit-learn's bundled
Wisconsin Diagnostic Breast Cancer data; graded by log loss on the predicted probability.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer

from services.builtin.definition import KEY, Definition, Task
from services.builtin.folder import write_competition


def _rows() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.data.rename(columns=lambda c: c.replace(" ", "_"))
    # scikit-learn codes malignant as 0; the competition asks for P(malignant).
    frame["malignant"] = (data.target == 0).astype(int)
    frame[KEY] = [f"row{i}" for i in range(len(frame))]
    return frame


DEFINITION = Definition(
    id="breast-cancer-diagnosis",
    name="Breast Cancer Diagnosis",
    metric="log-loss",
    lower_is_better=True,
    category="Tabular",
    task=Task.BINARY_PROBABILITY,
    id_column="id",
    target_column="malignant",
    test_fraction=0.3,
    rows=_rows,
    source="scikit-learn's bundled copy of the Breast Cancer Wisconsin (Diagnostic) data set",
)


def build(dest: Path) -> Path:
    return write_competition(DEFINITION, dest)
