"""A fast CSV reader that returns exactly the frame MLE-bench's reader would, or nothing.

`pd.read_csv(float_precision="round_trip")` (the reference reader) spends most of a large
submission's grading time. pyarrow parses the same bytes ten times faster, but its type
inference is not pandas'. So pyarrow only splits the file into text cells here, and each
column gets pandas' type only where that type is proven from the cells:

- the bytes are printable ASCII without quotes, spaces, blank lines or carriage returns, and
  the header names are unique and non-empty (nothing for pandas to unquote, strip, skip,
  rename or decode differently);
- int64: pyarrow parses every cell as an int64 and no cell is hexadecimal;
- float64: pyarrow parses every cell (pandas' NA spellings as NaN) to a finite double, at least
  one value is fractional or missing, and none is as large as an int64 limit (so pandas' integer
  pass fails without overflow); both parsers round decimal text correctly, so the doubles are
  the same;
- bool: every cell is "true" or "false" in some letter case (pandas' C parser spellings);
- text: no cell is an NA spelling, and every block of pandas' low-memory chunk size holds a cell
  that pandas itself, reading that cell alone, keeps as text (so no chunk turns numeric).

Anything else returns None and the caller uses the reference reader. tests/unit/grader/
test_arrow_csv.py compares both readers on generated files.

Making a million Python strings is the largest cost left for text ids. A caller that reads
some text columns only through Arrow (align_on_ids pairs text ids by hash) names them in
`arrow_text`: those come back as Arrow strings, the same values, and `object_text` turns them
into pandas' object column, the reference's, wherever anything else needs them.
"""

from __future__ import annotations

import io
from collections.abc import Collection

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from pandas._libs.parsers import STR_NA_VALUES

# Larger files use the reference reader. This path holds the bytes and their cells at once,
# and some of its steps hold the GIL for a whole column (a grade must never hold up the
# server's loop, or its shutdown, for long). 64 MiB is several million rows of a tabular
# submission.
MAX_BYTES = 64 << 20
_NA_SPELLINGS = pa.array(sorted(STR_NA_VALUES))
_NA_SPELLING_LENGTH = max(len(value.encode()) for value in STR_NA_VALUES)
_BOOL_SPELLINGS = pa.array(["false", "true"])
# int64's limits: a larger integer cell makes pandas' integer pass overflow, not fail.
_INT64_MAGNITUDE = 9.2e18
# Probing more text cells than this costs more than the reference reader saves.
_MAX_PROBES = 512
# Cells made into Python strings at a time while looking for a text witness.
_CANDIDATE_PIECE = 64
_PARSE = pa_csv.ParseOptions(
    delimiter=",",
    quote_char=False,
    double_quote=False,
    escape_char=False,
    newlines_in_values=False,
    ignore_empty_lines=False,
)


def read_proven_csv(data: bytes, arrow_text: Collection[str] = ()) -> pd.DataFrame | None:
    """The reference reader's frame for `data`, or None where that is not proven.

    Text columns named in `arrow_text` stay Arrow strings (see `object_text`)."""
    names = _header_names(data)
    if names is None:
        return None
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            parse_options=_PARSE,
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # ragged rows, for one: pandas fills, fails or makes an index
    if table.num_rows == 0 or table.column_names != names or not _one_row_per_line(data, table):
        return None
    chunk_rows = low_memory_chunk_rows(len(names))
    columns: dict[str, np.ndarray | pd.api.extensions.ExtensionArray] = {}
    probes: list[str] = []
    for name in names:
        cells = table[name]
        values = _typed(cells, has_x=b"x" in data or b"X" in data)
        if values is None:
            witnesses = _text_witnesses(cells, chunk_rows)
            if witnesses is None:
                return None
            probes.extend(witnesses)
        if values is not None:
            columns[name] = values
        elif name in arrow_text:
            columns[name] = pd.arrays.ArrowExtensionArray(cells)
        else:
            columns[name] = _text_values(cells)
    if probes and not _pandas_keeps_text(list(dict.fromkeys(probes))):
        return None
    return pd.DataFrame(columns, copy=False)


def object_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its Arrow text columns as pandas' object columns: the reference frame."""
    arrow = [
        name
        for name, dtype in frame.dtypes.items()
        if isinstance(dtype, pd.ArrowDtype) and pa.types.is_string(dtype.pyarrow_dtype)
    ]
    if not arrow:
        return frame
    frame = frame.copy(deep=False)
    for name in arrow:
        frame[name] = _text_values(arrow_cells(frame[name]))
    return frame


def arrow_cells(values: pd.Series) -> pa.ChunkedArray | None:
    """The Arrow strings of a column `read_proven_csv` kept as Arrow, else None."""
    dtype = values.dtype
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_string(dtype.pyarrow_dtype):
        return values.array.__arrow_array__()
    return None


def _text_values(cells: pa.ChunkedArray) -> np.ndarray:
    """Python strings, made one parse block at a time: each block holds the GIL briefly, so
    the server's loop (and a shutdown) is never held up for the whole column."""
    if cells.num_chunks == 0:
        return np.empty(0, dtype=object)
    return np.concatenate([chunk.to_numpy(zero_copy_only=False) for chunk in cells.chunks])


def low_memory_chunk_rows(width: int) -> int:
    """Rows per chunk of pandas' C parser (low_memory): each chunk infers its own types.

    pandas/_libs/parsers.pyx: the largest power of two below half of 2**20 // width;
    test_arrow_csv checks it against pandas' behaviour.
    """
    heuristic = (1 << 20) // max(width, 1)
    rows = 1
    while rows * 2 < heuristic:
        rows *= 2
    return rows


def _header_names(data: bytes) -> list[str] | None:
    """The header's names, where nothing in the bytes is for pandas to unquote, decode or end
    a line at other than a line feed. Spaces, other control bytes and blank lines are ruled
    out against the parse, by `_one_row_per_line`."""
    if not data.isascii() or b'"' in data or b"\r" in data or data.startswith(b"\n"):
        return None
    names = data[: data.find(b"\n") % (len(data) + 1)].decode("ascii").split(",")
    if "" in names or len(set(names)) != len(names):
        return None
    return names


def _one_row_per_line(data: bytes, table: pa.Table) -> bool:
    """Every byte up to the space is a line feed, and no line is blank.

    With quotes and carriage returns ruled out, each line feed ends the header or a row, and
    a final line without one is a row too; so where pyarrow kept every line as a row, the
    line feeds number its rows plus the header's and a final one. A space or any other
    control byte, or a line pyarrow did not make a row, leaves more bytes up to the space
    than that: one pass counts them all. pyarrow keeps a blank line as a row of empty cells
    (ignore_empty_lines=False), where pandas skips it: only a first column with an empty cell
    needs the search for one.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    if np.count_nonzero(raw <= ord(" ")) != table.num_rows + data.endswith(b"\n"):
        return False
    return pc.min(pc.binary_length(table.column(0))).as_py() > 0 or b"\n\n" not in data


def _typed(cells: pa.ChunkedArray, *, has_x: bool) -> np.ndarray | None:
    """The column as int64, float64 or bool, where pandas' type is proven; None otherwise."""
    # The sample only picks which casts to try (a failing cast costs about 1 s per million
    # bad cells); each path proves its own case.
    sample = _sample(cells)
    if any(cell.strip("0123456789+-.eE") and cell not in STR_NA_VALUES for cell in sample):
        bools = all(cell.lower() in ("true", "false") for cell in sample)
        return _bools(cells) if bools else None
    integers = all(cell.strip("0123456789-") == "" for cell in sample)
    if integers and not (
        has_x and pc.any(pc.match_substring(cells, "x", ignore_case=True)).as_py()
    ):
        try:
            return pc.cast(cells, pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            pass
    floats = _floats(cells, sample)
    return floats if floats is not None else _bools(cells)


def _sample(cells: pa.ChunkedArray, size: int = 16) -> list[str]:
    step = max(len(cells) // size, 1)
    return [cells[i].as_py() for i in range(0, len(cells), step)]


def _bools(cells: pa.ChunkedArray) -> np.ndarray | None:
    lowered = pc.ascii_lower(cells)
    if pc.all(pc.is_in(lowered, value_set=_BOOL_SPELLINGS)).as_py():
        return pc.equal(lowered, "true").to_numpy(zero_copy_only=False)
    return None


def _floats(cells: pa.ChunkedArray, sample: list[str]) -> np.ndarray | None:
    if not any(cell in STR_NA_VALUES for cell in sample):
        # No NA spelling casts to a number other than NaN (test_arrow_csv pins it), so where
        # every cell casts to a non-NaN double, none is missing: the same doubles as below,
        # without looking each cell up among the spellings.
        try:
            numbers = pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            numbers = None
        if numbers is not None and not np.isnan(numbers).any():
            return _proven_floats(numbers, np.zeros(len(numbers), dtype=bool), any_missing=False)
    missing = pc.is_in(cells, value_set=_NA_SPELLINGS)
    try:
        values = pc.cast(pc.if_else(missing, None, cells), pa.float64())
    except pa.ArrowInvalid:
        return None
    numbers = values.to_numpy(zero_copy_only=False)  # nulls become NaN
    absent = np.isnan(numbers)
    if (absent != missing.to_numpy(zero_copy_only=False)).any():
        return None  # a NaN spelling pandas does not list ("NAN"): its parse decides
    return _proven_floats(numbers, absent, any_missing=pc.any(missing).as_py())


def _proven_floats(
    numbers: np.ndarray, absent: np.ndarray, *, any_missing: bool
) -> np.ndarray | None:
    present = numbers[~absent] if any_missing else numbers
    if not np.isfinite(present).all() or (np.abs(present) >= _INT64_MAGNITUDE).any():
        return None  # "inf" or "1e400": pandas may keep the text
    whole = (present == np.trunc(present)).all()
    if whole and not any_missing:
        return None  # integers that pyarrow refused ("+5"): pandas reads int64
    if whole and np.signbit(present[present == 0]).any():
        # Integers with missing cells: pandas' integer pass takes them, then makes them
        # floats, so "-0" comes back as 0.0 where pyarrow's cast keeps -0.0 (and "-0.0"
        # would stay -0.0 for pandas too): its parse decides.
        return None
    return numbers


def _text_witnesses(cells: pa.ChunkedArray, chunk_rows: int) -> list[str] | None:
    """One cell per half chunk (and the last cell), each one pandas must keep as text.

    Any run of `chunk_rows` rows holds a whole half-chunk block, so every chunk pandas infers
    on its own holds a cell that is text for pandas, whatever the chunks' alignment; the last
    cell covers a short final chunk. None when a block has no candidate or any cell is an NA
    spelling.
    """
    # Cells longer than every NA spelling need no look-up (text ids usually are).
    if (
        pc.min(pc.binary_length(cells)).as_py() <= _NA_SPELLING_LENGTH
        and pc.any(pc.is_in(cells, value_set=_NA_SPELLINGS)).as_py()
    ):
        return None
    step = max(chunk_rows // 2, 1)
    witnesses = []
    for start in [*range(0, len(cells), step), len(cells) - 1]:
        found = _first_text_candidate(cells, start, min(start + step, len(cells)))
        if found is None:
            return None
        witnesses.append(found)
    unique = list(dict.fromkeys(witnesses))
    return unique if len(unique) <= _MAX_PROBES else None


def _first_text_candidate(cells: pa.ChunkedArray, start: int, stop: int) -> str | None:
    """The first cell in rows [start, stop) that may be text, made into Python strings a few
    at a time (the first one usually is)."""
    for at in range(start, stop, _CANDIDATE_PIECE):
        piece = cells.slice(at, min(_CANDIDATE_PIECE, stop - at)).to_pylist()
        found = next((v for v in piece if _may_be_text(v)), None)
        if found is not None:
            return found
    return None


def _may_be_text(cell: str) -> bool:
    """A cell that ends pandas' integer pass with a plain failure, not a bool spelling.

    Its sign and leading digits must stop short of int64's 19 digits: a longer run overflows
    first, and pandas then takes a path on which a cell it keeps as text when alone can still
    read as a float in its column ("-9223372036854777856.0").
    """
    digits = len(cell) - len(cell.lstrip("+-").lstrip("0123456789"))
    return digits < len(cell) and digits <= 18 and cell.lower() not in ("true", "false")


def _pandas_keeps_text(cells: list[str]) -> bool:
    """pandas reads each cell, alone in its column, as the same text.

    One row with one column per cell: pandas infers each column on its own.
    """
    if len(cells) > _MAX_PROBES:
        return False
    header = ",".join(f"c{i}" for i in range(len(cells)))
    probe = f"{header}\n{','.join(cells)}\n".encode()
    row = pd.read_csv(io.BytesIO(probe), float_precision="round_trip")
    return all(
        row[f"c{i}"].dtype == object and row[f"c{i}"].iloc[0] == cell
        for i, cell in enumerate(cells)
    )
