"""Pairing by cached id order gives exactly the frames (or the error) that sorting gives.

Writable answers take the reference's sort; the same answers frozen, as the grader caches
them, take the cached order. Both must agree on every generated submission.
"""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.grader.competitions.base import InvalidSubmission
from services.grader.competitions.checks import align_on_ids
from services.grader.competitions.id_order import ORDERS, freeze

ID_VALUES = {
    "int": st.integers(-5, 40),
    "big int": st.integers(-(2**63), 2**63 - 1),
    "text": st.from_regex(r"[0-9]{2}_[a-c]", fullmatch=True),
    "float": st.sampled_from([0.0, -0.0, 1.5, 3.0, np.nan]),
}


CHANGES = ["same", "sorted", "shuffled", "unknown", "repeat", "drop", "as text", "as float"]
CHANGES += ["nan", "mixed"]


@st.composite
def id_cases(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    kind = draw(st.sampled_from(sorted(ID_VALUES)))
    unique = draw(st.booleans())
    ids = draw(st.lists(ID_VALUES[kind], min_size=0, max_size=12, unique=unique))
    answers = pd.DataFrame({"id": ids, "v": np.arange(len(ids))})
    if kind == "text":
        answers["id"] = answers["id"].astype(object)
    sub_ids = list(ids)
    how = draw(st.sampled_from(CHANGES))
    event(f"{kind}/{how}")
    if how == "sorted":
        sub_ids = sorted(sub_ids, key=lambda v: (isinstance(v, float) and np.isnan(v), v))
    elif how == "shuffled":
        sub_ids = draw(st.permutations(sub_ids))
    elif how == "unknown" and sub_ids:
        sub_ids[draw(st.integers(0, len(sub_ids) - 1))] = draw(ID_VALUES[kind])
    elif how == "repeat" and len(sub_ids) > 1:
        sub_ids[-1] = sub_ids[0]
    elif how == "drop" and sub_ids:
        sub_ids.pop(draw(st.integers(0, len(sub_ids) - 1)))
    elif how == "as text":
        sub_ids = [str(v) for v in sub_ids]
    elif how == "as float":
        sub_ids = [float(v) if not isinstance(v, str) else v for v in sub_ids]
    elif how == "nan" and sub_ids:
        sub_ids[0] = np.nan
    elif how == "mixed" and sub_ids:
        sub_ids[0] = 7 if isinstance(sub_ids[0], str) else "7"
    submission = pd.DataFrame({"id": pd.Series(sub_ids, dtype=object if how == "mixed" else None)})
    if len(sub_ids) and kind == "text" and how != "mixed":
        submission["id"] = submission["id"].astype(object)
    submission["v"] = np.arange(len(sub_ids)) * 10
    return submission, answers


def _outcome(submission: pd.DataFrame, answers: pd.DataFrame, columns: list[str] | None):
    try:
        return align_on_ids(submission, answers, "id", columns)
    except InvalidSubmission as exc:
        return ("invalid", str(exc))
    except Exception as exc:
        return ("error", type(exc).__name__)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(id_cases(), st.sampled_from([None, ["v"], ["id", "v"]]))
def test_cached_order_pairs_exactly_as_sorting(case, columns) -> None:
    submission, answers = case
    reference = _outcome(submission, answers.copy(), columns)
    fast = _outcome(submission, freeze(answers.copy()), columns)
    if isinstance(reference[0], str):
        assert fast == reference
        return
    assert not isinstance(fast[0], str), fast
    for got, want in zip(fast, reference, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_frozen_answers_take_the_cached_order_and_keep_it_while_they_live() -> None:
    rng = np.random.default_rng(1)
    ids = np.array([f"{i:05d}_01" for i in rng.permutation(5000)], dtype=object)
    answers = freeze(pd.DataFrame({"id": ids, "y": np.arange(5000)}))
    before = len(ORDERS)
    submission = pd.DataFrame({"id": ids[::-1].copy(), "p": np.arange(5000)})
    sub, ans = align_on_ids(submission, answers.copy(deep=False), "id")
    assert len(ORDERS) == before + 1  # shallow copies share the cached order
    align_on_ids(submission, answers.copy(deep=False), "id")
    assert len(ORDERS) == before + 1
    assert (sub["id"].to_numpy() == ans["id"].to_numpy()).all()
    assert sub["id"].is_monotonic_increasing
    del answers, sub, ans
    gc.collect()
    assert len(ORDERS) == before  # freed with the answers' arrays


def test_an_orders_bytes_include_its_arrow_copies_once_made() -> None:
    ids = np.array([f"id-{i:06d}" for i in range(3000, 0, -1)], dtype=object)
    answers = freeze(pd.DataFrame({"id": ids, "y": np.arange(3000), "n": np.arange(3000)}))
    assert ORDERS.nbytes_of(answers) == 0  # nothing derived before a grade asks
    order = ORDERS.get(answers["id"])
    ORDERS.get(answers["n"])  # an int64 column: an order of its own
    plain = order.nbytes
    assert plain == order.order.nbytes + order.sorted_ids.nbytes
    in_order, ordered = order.arrow_ids
    assert order.nbytes == plain + in_order.nbytes + ordered.nbytes
    # Each copy holds the ids' bytes and their offsets.
    assert ordered.nbytes >= sum(len(i) for i in ids) + 4 * len(ids)
    copy = answers.copy(deep=False)  # what every grade gets: the same orders
    n_order = ORDERS.get(answers["n"])
    assert ORDERS.nbytes_of(copy) == order.nbytes + n_order.nbytes
    assert ORDERS.nbytes_of(answers[["y"]]) == 0


def test_writable_answers_are_never_cached() -> None:
    answers = pd.DataFrame({"id": [3, 1, 2], "y": [0, 1, 2]})
    before = len(ORDERS)
    align_on_ids(pd.DataFrame({"id": [1, 2, 3]}), answers, "id")
    assert len(ORDERS) == before


def test_cached_answers_stay_writable_for_specs_through_copy_on_write() -> None:
    answers = freeze(pd.DataFrame({"id": [3, 1, 2], "y": [0.5, 1.5, 2.5]}))
    private = answers.copy(deep=False)
    private.loc[0, "y"] = 9.0  # a spec editing its copy
    private["id"] = private["id"] * 2
    assert answers["y"].tolist() == [0.5, 1.5, 2.5] and answers["id"].tolist() == [3, 1, 2]
    with pytest.raises(ValueError, match="read-only"):
        answers["y"].to_numpy()[0] = 1.0
