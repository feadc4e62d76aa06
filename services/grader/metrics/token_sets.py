"""Vectorised set operations on many small rows of tokens (words, labels, article ids).

Rows are flattened to parallel arrays (row number, token), and each (row, token) pair becomes
one int64 key, so set membership and de-duplication are sorts and binary searches in numpy
instead of per-row Python sets. Token equality is Python equality (via pandas' factorize).
"""

from __future__ import annotations

from itertools import chain, repeat

import numpy as np
import pandas as pd


def flatten(rows: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(row position of each token, tokens as an object array) of a Series of token lists."""
    lengths = rows.map(len).to_numpy(dtype=np.int64)
    tokens = np.empty(int(lengths.sum()), dtype=object)
    tokens[:] = list(chain.from_iterable(rows))
    return np.repeat(np.arange(len(rows)), lengths), tokens


def split_flat(texts: pd.Series, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """Like `flatten(texts.str.split(sep))` for a Series of str, without building the lists.

    Joining with the separator and splitting once yields every row's `str.split(sep)` pieces
    in order, and each row has (number of separators + 1) pieces.
    """
    lengths = np.fromiter(map(str.count, texts, repeat(sep)), np.int64, count=len(texts)) + 1
    tokens = np.empty(int(lengths.sum()), dtype=object)
    tokens[:] = sep.join(texts).split(sep) if len(texts) else []
    return np.repeat(np.arange(len(texts)), lengths), tokens


def pair_keys(
    rows_a: np.ndarray, tokens_a: np.ndarray, rows_b: np.ndarray, tokens_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One int64 key per (row, token) pair of two flattened collections, equal exactly when
    both the row and the token are equal."""
    codes, uniques = pd.factorize(np.concatenate([tokens_a, tokens_b]))
    keys = np.concatenate([rows_a, rows_b]).astype(np.int64) * max(len(uniques), 1) + codes
    return keys[: len(tokens_a)], keys[len(tokens_a) :]


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    ordered = np.sort(keys)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def is_in(keys: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Whether each key occurs in `sorted_set` (sorted, without repeats)."""
    if not len(sorted_set):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_set, keys), len(sorted_set) - 1)
    return sorted_set[at] == keys


def first_occurrence(keys: np.ndarray) -> np.ndarray:
    """True where a key appears for the first time, in array order."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.empty(len(keys), dtype=bool)
    first[order] = np.r_[True, ordered[1:] != ordered[:-1]] if len(keys) else []
    return first
