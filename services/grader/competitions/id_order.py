"""Pairing a submission with cached answers by id without sorting either on every call.

MLE-bench sorts both frames by id (a stable sort) and compares the ids row by row. For
millions of text ids that sort is most of a cached grade. The answers' sort order is the same
on every call, so it is computed once per answers array and kept while that array lives; the
submission then needs no sort at all:

- where its ids equal the answers' ids row by row (in the answers' order or in sorted order),
  the answers' stable sort order is its own: equal values of one type compare alike;
- where the answers' ids are unique, a hash lookup places each submission row; it finds every
  id exactly when the two id multisets are equal, the reference's condition.

This holds only for ids that compare exactly (int64, or text in both frames), and only for
answers whose arrays cannot change (read-only, as the grader's cached answers are: see
`freeze`). Everything else takes the reference's sort.

Submission text ids may also arrive as Arrow strings (arrow_csv's `arrow_text`), which spares
making a million Python strings: `arrow_positions` gives the same answer from the answers'
ids as Arrow strings. Two Python strings are equal exactly when their UTF-8 bytes are, which
is how Arrow compares them.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class IdOrder:
    # The stable sort permutation of the answers' ids, and the ids in that order.
    order: np.ndarray
    sorted_ids: np.ndarray
    unique: bool

    @cached_property
    def arrow_ids(self) -> tuple[pa.ChunkedArray, pa.ChunkedArray] | None:
        """Text ids as Arrow strings: in the answers' order and sorted; None for other ids."""
        if self.sorted_ids.dtype != object:
            return None
        try:
            ordered = pa.chunked_array([pa.array(self.sorted_ids, type=pa.string())])
        except (pa.ArrowException, UnicodeEncodeError):
            return None  # a string UTF-8 cannot hold (a lone surrogate): the sort decides
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(len(self.order))
        return ordered.take(inverse), ordered

    @property
    def nbytes(self) -> int:
        """What this order holds beyond the answers themselves: the permutation, the
        sorted array (pointers to the answers' strings), and the Arrow copies once made."""
        held = self.order.nbytes + self.sorted_ids.nbytes
        arrow = self.__dict__.get("arrow_ids")  # only once computed
        if arrow is not None:
            held += sum(ids.nbytes for ids in arrow)
        return held


def freeze(frame: pd.DataFrame) -> pd.DataFrame:
    """Makes the frame's arrays read-only (copy-on-write copies before any write)."""
    for name in frame.columns.unique():
        values = frame[name].to_numpy()
        if isinstance(values, np.ndarray):
            _owner(values).flags.writeable = False
    return frame


def comparable_ids(values: np.ndarray) -> bool:
    """int64, or all text (no NaN, no numbers): ids whose equality and order are exact."""
    if values.dtype == np.int64:
        return True
    return values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string"


def _owner(values: np.ndarray) -> np.ndarray:
    while isinstance(values.base, np.ndarray):
        values = values.base
    return values


class IdOrders:
    """Sort orders of read-only id arrays, dropped when the array is freed."""

    def __init__(self) -> None:
        self._orders: dict[tuple[object, ...], IdOrder | None] = {}

    def get(self, ids: pd.Series) -> IdOrder | None:
        values = ids.to_numpy()
        owner = _owner(values)
        if owner.flags.writeable:
            return None
        key = _key(values, owner)
        if key not in self._orders:
            self._orders[key] = _sort_order(ids) if comparable_ids(values) else None
            weakref.finalize(owner, self._orders.pop, key, None)
        return self._orders[key]

    def nbytes_of(self, frame: pd.DataFrame) -> int:
        """What the orders of the frame's columns hold so far (none before a grade asks)."""
        held = 0
        for name in frame.columns.unique():
            column = frame[name]
            if isinstance(column, pd.Series):  # a repeated name never gets an order
                values = column.to_numpy()
                order = self._orders.get(_key(values, _owner(values)))
                held += order.nbytes if order is not None else 0
        return held

    def __len__(self) -> int:
        return len(self._orders)


def _key(values: np.ndarray, owner: np.ndarray) -> tuple[object, ...]:
    # The owner's identity and the view's geometry: views of one frozen array, such as the
    # columns of the shallow copies every grade gets, share their order.
    return (
        id(owner),
        values.__array_interface__["data"][0],
        values.shape,
        values.strides,
        values.dtype.str,
    )


def _sort_order(ids: pd.Series) -> IdOrder:
    # The same call the reference path makes, so the permutation is the one it applies.
    positions = pd.DataFrame({"id": ids.to_numpy(), "at": np.arange(len(ids))})
    ordered = positions.sort_values("id", kind="stable", ignore_index=True)
    sorted_ids = ordered["id"].to_numpy()
    return IdOrder(ordered["at"].to_numpy(), sorted_ids, bool(pd.Index(sorted_ids).is_unique))


ORDERS = IdOrders()


class IdsDiffer(Exception):
    """The submission's ids are not exactly the answers' ids."""


def sorted_positions(
    submission_ids: pd.Series, answers_ids: pd.Series, answers_order: IdOrder
) -> np.ndarray | None:
    """Submission rows in the order MLE-bench's stable sort puts them, when the ids match.

    Raises IdsDiffer where the sort path would find the ids differ; None means this shortcut
    cannot decide and the caller must sort.
    """
    values = submission_ids.to_numpy()
    if values.dtype != answers_order.sorted_ids.dtype or not comparable_ids(values):
        return None
    if np.array_equal(values, answers_ids.to_numpy()):
        return answers_order.order
    if np.array_equal(values, answers_order.sorted_ids):
        return np.arange(len(values))
    if not answers_order.unique:
        return None
    index = pd.Index(values)
    if not index.is_unique:
        raise IdsDiffer
    positions = index.get_indexer(answers_order.sorted_ids)
    if (positions < 0).any():
        raise IdsDiffer
    return positions


def arrow_positions(submission_ids: pa.ChunkedArray, answers_order: IdOrder) -> np.ndarray | None:
    """`sorted_positions` for text submission ids held as Arrow strings (no nulls) where they
    match the answers' ids; None where they do not or it cannot tell, and the caller must
    decide on Python strings."""
    arrow = answers_order.arrow_ids
    if arrow is None or submission_ids.type != pa.string() or submission_ids.null_count:
        return None
    ids, sorted_ids = arrow
    if len(submission_ids) != len(ids):
        return None
    if submission_ids.equals(ids):
        return answers_order.order
    if submission_ids.equals(sorted_ids):
        return np.arange(len(ids))
    if not answers_order.unique:
        return None
    # Where every one of the n distinct answer ids is among the n submission ids, those are
    # unique too, so each one's first position is its only one (pd.Index.get_indexer's).
    positions = pc.index_in(sorted_ids, value_set=submission_ids)
    if positions.null_count:
        return None
    return positions.to_numpy().astype(np.intp)
