"""Tabular regression: disease progression one year after baseline (scikit-learn's bundled
diabetes data, unscaled; graded by RMSE)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_diabetes

from services.builtin.definition import KEY, Definition, Task
from services.builtin.folder import write_competition

# scikit-learn's short names, spelled out as the original study describes them.
_COLUMNS = {
    "age": "age",
    "sex": "sex",
    "bmi": "bmi",
    "bp": "blood_pressure",
    "s1": "total_cholesterol",
    "s2": "ldl",
    "s3": "hdl",
    "s4": "cholesterol_hdl_ratio",
    "s5": "log_triglycerides",
    "s6": "glucose",
}


def _rows() -> pd.DataFrame:
    data = load_diabetes(as_frame=True, scaled=False)
    frame = data.data.rename(columns=_COLUMNS)
    for column in frame.columns:
        if (frame[column] % 1 == 0).all():
            frame[column] = frame[column].astype(int)
    frame["progression"] = data.target.astype(int)
    frame[KEY] = [f"row{i}" for i in range(len(frame))]
    return frame


DEFINITION = Definition(
    id="diabetes-progression",
    name="Diabetes Progression",
    metric="rmse",
    lower_is_better=True,
    category="Tabular",
    task=Task.REGRESSION,
    id_column="id",
    target_column="progression",
    test_fraction=0.3,
    rows=_rows,
    source="scikit-learn's bundled copy of the diabetes data set (Efron et al., 2004)",
    stratify=False,
)


def build(dest: Path) -> Path:
    return write_competition(DEFINITION, dest)
