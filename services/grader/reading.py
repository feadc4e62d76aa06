"""Reading submissions and answers exactly as MLE-bench does (pandas, round-trip floats)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import IO, Any

import pandas as pd

from services.grader.competitions.base import AnswersFormat, InvalidSubmission

Source = str | Path | IO[bytes]


def read_table(source: Source) -> pd.DataFrame:
    """MLE-bench's reader: round-trip float parsing, and an empty file is an empty frame."""
    try:
        return pd.read_csv(source, float_precision="round_trip")
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def read_submission(source: Source) -> pd.DataFrame:
    """Reads a submission CSV; anything pandas cannot parse is an invalid submission."""
    try:
        return read_table(source)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise InvalidSubmission(f"Submission is not a readable CSV file: {exc}") from exc


def read_answers(data: bytes, answers_format: AnswersFormat) -> Any:
    if answers_format == "jsonl":
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    return read_table(io.BytesIO(data))
