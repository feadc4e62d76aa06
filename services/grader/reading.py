"""Reading submissions and answers exactly as MLE-bench does (pandas, round-trip floats)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection
from pathlib import Path
from typing import IO, Any

import pandas as pd

from services.grader.arrow_csv import MAX_BYTES, read_proven_csv
from services.grader.competitions.base import AnswersFormat, InvalidSubmission

Source = str | Path | IO[bytes]


def read_table(source: Source, arrow_text: Collection[str] = ()) -> pd.DataFrame:
    """MLE-bench's reader: round-trip float parsing, and an empty file is an empty frame.

    Files up to `arrow_csv.MAX_BYTES` first go to pyarrow, which returns the same frame where
    that is proven (services/grader/arrow_csv.py); the others go to pandas. Text columns named
    in `arrow_text` may come back as Arrow strings (`arrow_csv.object_text` undoes that).
    """
    data = _read_small(source)
    if data is not None:
        frame = read_proven_csv(data, arrow_text)
        if frame is not None:
            return frame
        source = io.BytesIO(data)
    try:
        return pd.read_csv(source, float_precision="round_trip")
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _read_small(source: Source) -> bytes | None:
    """The whole file, unless it is larger than the fast reader takes."""
    if isinstance(source, str | Path):
        with open(source, "rb") as handle:
            return _read_small(handle)
    start = source.tell()
    size = source.seek(0, io.SEEK_END) - start
    source.seek(start)
    return source.read() if size <= MAX_BYTES else None


# Far above any MLE-bench submission (dog-breed-identification's 121 columns is the widest
# we know of). pandas' header handling is quadratic in the number of columns: 10,000 take
# about 2 s and 30,000 about 10 s even with no row at all, so more are refused unread.
MAX_SUBMISSION_COLUMNS = 2048
# Enough for a header of that many long names; a longer first record is cut here. A header
# is read from the first 64 KiB when it ends there, so small files are not read twice whole.
HEADER_PROBE_BYTES = 1 << 20
_FIRST_PROBE_BYTES = 64 << 10


def _peek(source: Source, size: int) -> bytes:
    if isinstance(source, str | Path):
        with open(source, "rb") as handle:
            return handle.read(size)
    start = source.tell()
    try:
        return source.read(size)
    finally:
        source.seek(start)


def header_columns(source: Source) -> int:
    """The fields of the first non-blank record, read as csv from the first MiB."""
    head = _peek(source, _FIRST_PROBE_BYTES)
    if b"\n" not in head.lstrip(b"\r\n"):
        head = _peek(source, HEADER_PROBE_BYTES)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        return next((len(row) for row in csv.reader(io.StringIO(text)) if row), 0)
    except csv.Error:
        return 0  # pandas decides


def read_submission(source: Source, arrow_text: Collection[str] = ()) -> pd.DataFrame:
    """Reads a submission CSV; anything pandas cannot parse is an invalid submission."""
    columns = header_columns(source)
    if columns > MAX_SUBMISSION_COLUMNS:
        raise InvalidSubmission(
            f"Submission has more than {MAX_SUBMISSION_COLUMNS} columns; wider files are not read."
        )
    try:
        return read_table(source, arrow_text)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise InvalidSubmission(f"Submission is not a readable CSV file: {exc}") from exc


def read_answers(data: bytes, answers_format: AnswersFormat) -> Any:
    if answers_format == "jsonl":
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    return read_table(io.BytesIO(data))
