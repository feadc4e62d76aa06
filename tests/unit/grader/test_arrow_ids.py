"""Text ids kept as Arrow strings pair, score and fail exactly as the reference's object ids.

petfinder-pawpularity-score's reader keeps its `Id` column as Arrow strings
(CompetitionSpec.arrow_text_columns) and `align_on_ids` pairs them without making Python
strings where they match the cached answers. Every generated case is graded three ways:
object ids with writable answers (the reference's sort), object ids with frozen answers (the
cached order) and Arrow ids with frozen answers; frames, float bits and messages must agree.
"""

from __future__ import annotations

import dataclasses
import io
import unicodedata

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from services.grader.arrow_csv import arrow_cells, object_text, read_proven_csv
from services.grader.competitions import get_spec
from services.grader.competitions.base import InvalidSubmission
from services.grader.competitions.checks import align_on_ids
from services.grader.competitions.id_order import ORDERS, arrow_positions, freeze
from services.grader.reading import read_answers, read_submission
from services.grader.scoring import score_source

SPEC = get_spec("petfinder-pawpularity-score")
assert SPEC is not None
PLAIN_SPEC = dataclasses.replace(SPEC, arrow_text_columns=())

# Ids that look alike to people, to pandas' parser or to Unicode, but not to byte equality.
LOOKALIKES = [
    "", "NA", "nan", "NaN", "None", "null", "N/A", "001", "1", "01", "1.0", "-0", "1e3",
    " 1", "1 ", "a", "A", "a ", " a", "\ufeffa", "\ufeff", "é", "e\u0301", "\u00c5",
    "A\u030a", "ß", "SS", "ﬁ", "fi", "İ", "i\u0307", "日本", "\U0001f600", "\x00", "a\tb",
    "a,b", '"a"', "x" * 3000, "x" * 2999 + "y",
]  # fmt: skip
IDS = st.one_of(
    st.from_regex(r"[a-f0-9]{6}", fullmatch=True),
    st.sampled_from(LOOKALIKES),
    st.text(max_size=6),
)
# Cells the fast reader takes as they are (ASCII, no quotes or spaces), and some it declines.
FILE_IDS = st.one_of(
    st.from_regex(r"[a-f0-9]{6}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.+-]{1,8}", fullmatch=True),
    st.sampled_from(LOOKALIKES),
)
CHANGES = ["same", "sorted", "shuffled", "unknown", "repeat", "drop", "extra"]
CHANGES += ["variant", "swap"]


def _variant(value: str, how: str) -> str:
    if how == "strip":
        return value.strip() if value.strip() != value else value + " "
    if how == "case":
        return value.swapcase() if value.swapcase() != value else value + "A"
    if how == "nfd":
        changed = unicodedata.normalize("NFD", value)
        return changed if changed != value else unicodedata.normalize("NFC", value) + "\u0301"
    if how == "bom":
        return "\ufeff" + value
    return value.zfill(len(value) + 1)  # "1" -> "01"


@st.composite
def id_cases(draw: st.DrawFn, values: st.SearchStrategy[str] = IDS) -> tuple[list[str], list[str]]:
    unique = draw(st.booleans())
    ids = draw(st.lists(values, min_size=1, max_size=12, unique=unique))
    sub = list(ids)
    how = draw(st.sampled_from(CHANGES))
    at = draw(st.integers(0, len(sub) - 1))
    event(f"{'unique' if unique else 'any'}/{how}")
    if how == "sorted":
        sub.sort()
    elif how == "shuffled":
        sub = draw(st.permutations(sub))
    elif how == "unknown":
        sub[at] = draw(values)
    elif how == "repeat" and len(sub) > 1:
        sub[(at + 1) % len(sub)] = sub[at]
    elif how == "drop":
        sub.pop(at)
    elif how == "extra":
        sub.append(draw(values))
    elif how == "variant":
        sub[at] = _variant(sub[at], draw(st.sampled_from(["strip", "case", "nfd", "bom", "zero"])))
    elif how == "swap" and len(sub) > 1:
        sub[0], sub[-1] = sub[-1], sub[0]
    return ids, sub


def _frames(ids: list[str], sub_ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Answers, and the submission with object ids and with Arrow ids."""
    answers = pd.DataFrame({"Id": np.array(ids, dtype=object), "Pawpularity": len(ids)})
    answers["Pawpularity"] = np.arange(1, len(ids) + 1) % 100 + 1
    scores = (np.arange(len(sub_ids)) * 7.3) % 99 + 1.0
    objects = pd.DataFrame({"Id": np.array(sub_ids, dtype=object), "Pawpularity": scores})
    arrow = pd.arrays.ArrowExtensionArray(pa.chunked_array([pa.array(sub_ids, pa.string())]))
    arrows = pd.DataFrame({"Id": arrow, "Pawpularity": scores})
    assert arrow_cells(arrows["Id"]) is not None
    return answers, objects, arrows


def _aligned(submission: pd.DataFrame, answers: pd.DataFrame, columns: list[str] | None):
    try:
        return align_on_ids(submission, answers, "Id", columns)
    except InvalidSubmission as exc:
        return ("invalid", str(exc))


def _graded(submission: pd.DataFrame, answers: pd.DataFrame) -> tuple[str, object]:
    try:
        return ("score", np.float64(SPEC.grade(submission, answers)).view(np.int64))
    except InvalidSubmission as exc:
        return ("invalid", str(exc))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(id_cases(), st.sampled_from([["Pawpularity"], None, ["Id", "Pawpularity"]]))
@example((["a", "b"], ["b", "a"]), ["Pawpularity"])
@example((["1", "001"], ["001", "1"]), ["Pawpularity"])
@example((["é", "x"], ["e\u0301", "x"]), ["Pawpularity"])
@example((["a", "a", "b"], ["a", "b", "a"]), ["Pawpularity"])
def test_arrow_ids_pair_exactly_as_object_ids(case, columns) -> None:
    answers, objects, arrows = _frames(*case)
    reference = _aligned(objects, answers.copy(), columns)
    cached = _aligned(objects, freeze(answers.copy()), columns)
    frozen = freeze(answers.copy())
    fast = _aligned(arrows, frozen, columns)
    order = ORDERS.get(frozen["Id"])
    paired = order is not None and arrow_positions(arrow_cells(arrows["Id"]), order) is not None
    event("paired as Arrow" if paired else "decided on objects")
    for got in (cached, fast):
        if isinstance(reference[0], str):
            assert got == reference
            continue
        for frame, want in zip(got, reference, strict=True):
            pd.testing.assert_frame_equal(frame, want, check_exact=True)
            assert [type(v) for v in frame.get("Id", [])] == [type(v) for v in want.get("Id", [])]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(id_cases())
def test_arrow_ids_grade_to_the_same_float_bits_or_message(case) -> None:
    answers, objects, arrows = _frames(*case)
    reference = _graded(objects, answers.copy())
    event(reference[0])
    assert _graded(arrows, freeze(answers.copy())) == reference
    assert _graded(objects, freeze(answers.copy())) == reference


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(id_cases(FILE_IDS), st.sampled_from([False, False, False, True]))
def test_submission_files_grade_the_same_with_and_without_arrow_ids(case, bom) -> None:
    """Whole files, through both readers: ids that need quoting or are not ASCII send the
    file to pandas; the rest keep their ids as Arrow strings."""
    ids, sub_ids = case
    answers, objects, _ = _frames(ids, sub_ids)
    data = objects.to_csv(index=False).encode()
    data = (b"\xef\xbb\xbf" + data) if bom else data
    cached = freeze(read_answers(answers.to_csv(index=False).encode(), "csv"))
    fast = score_source(SPEC, io.BytesIO(data), cached.copy(deep=False))
    plain = score_source(PLAIN_SPEC, io.BytesIO(data), cached.copy(deep=False))
    event("arrow ids" if read_proven_csv(data, ["Id"]) is not None else "pandas reads")
    assert fast == plain


SPACESHIP = get_spec("spaceship-titanic")
assert SPACESHIP is not None and SPACESHIP.arrow_text_columns == ("PassengerId",)
PLAIN_SPACESHIP = dataclasses.replace(SPACESHIP, arrow_text_columns=())
# Predicted labels as agents write them: pandas reads some as bools, the rest as text or
# numbers, which the accuracy check refuses in its own words.
LABELS = st.sampled_from(["True", "False", "true", "FALSE", "1", "0", "", "yes", "1.0"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(id_cases(FILE_IDS), st.data(), st.sampled_from([False, False, False, True]))
def test_spaceship_files_grade_the_same_with_and_without_arrow_ids(case, data, bom) -> None:
    """spaceship-titanic's PassengerId is read only through align_on_ids, so its reader keeps
    it as Arrow strings too: the same score or the same message, whatever the ids or labels."""
    ids, sub_ids = case
    truth = [i % 3 == 0 for i in range(len(ids))]
    kinds = data.draw(st.sampled_from([st.sampled_from(["True", "False"]), LABELS]))
    labels = data.draw(st.lists(kinds, min_size=len(sub_ids), max_size=len(sub_ids)))
    answers = pd.DataFrame({"PassengerId": ids, "Transported": truth})
    submission = pd.DataFrame({"PassengerId": sub_ids, "Transported": labels})
    raw = submission.to_csv(index=False).encode()
    raw = (b"\xef\xbb\xbf" + raw) if bom else raw
    cached = freeze(read_answers(answers.to_csv(index=False).encode(), "csv"))
    fast = score_source(SPACESHIP, io.BytesIO(raw), cached.copy(deep=False))
    plain = score_source(PLAIN_SPACESHIP, io.BytesIO(raw), cached.copy(deep=False))
    event(
        f"{'valid' if fast.valid else 'invalid'}, "
        + ("arrow ids" if read_proven_csv(raw, ["PassengerId"]) is not None else "pandas reads")
    )
    assert fast == plain


def test_matching_arrow_ids_are_paired_without_python_strings() -> None:
    rng = np.random.default_rng(5)
    ids = [bytes(row).hex() for row in rng.integers(0, 256, (4000, 16), dtype=np.uint8)]
    answers = freeze(pd.DataFrame({"Id": np.array(ids, dtype=object), "Pawpularity": 50}))
    order = ORDERS.get(answers["Id"])
    assert order is not None
    for shuffle in (np.arange(4000), np.argsort(ids, kind="stable"), rng.permutation(4000)):
        data = pd.DataFrame({"Id": np.array(ids)[shuffle], "Pawpularity": 42.5})
        csv = data.to_csv(index=False).encode()
        frame = read_submission(io.BytesIO(csv), ["Id"])
        cells = arrow_cells(frame["Id"])
        assert cells is not None  # the reader kept them as Arrow strings
        positions = arrow_positions(cells, order)
        assert positions is not None  # and they were paired as such
        assert (np.array(ids, dtype=object)[shuffle][positions] == order.sorted_ids).all()
        assert object_text(frame).equals(read_submission(io.BytesIO(csv)))
        outcome = score_source(SPEC, io.BytesIO(csv), answers.copy(deep=False))
        assert outcome == score_source(PLAIN_SPEC, io.BytesIO(csv), answers.copy(deep=False))
        assert outcome.score == 7.5
