"""Submission checks shared by several competition specs.

Each check raises InvalidSubmission with a message that may quote the submission, never the
answers. Keep these faithful to what MLE-bench's graders reject; docs/grading.md lists where
mleb deliberately differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from services.grader.arrow_csv import arrow_cells, object_text
from services.grader.competitions.base import InvalidSubmission
from services.grader.competitions.id_order import (
    ORDERS,
    IdOrder,
    IdsDiffer,
    arrow_positions,
    sorted_positions,
)
from services.grader.metrics.classification import accuracy, exact_match_rate, log_loss
from services.grader.metrics.correlation import quadratic_weighted_kappa
from services.grader.metrics.fscore import macro_f1, micro_f1_of_label_sets


def require_columns(submission: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in submission.columns]
    if missing:
        raise InvalidSubmission(f"Submission is missing required column(s): {missing}.")


def require_same_length(submission: pd.DataFrame, answers: pd.DataFrame) -> None:
    if len(submission) != len(answers):
        raise InvalidSubmission(
            f"Submission has {len(submission)} rows, but {len(answers)} are expected."
        )


def _examples(values: pd.Series, limit: int = 5) -> str:
    """A few distinct submission values, shortened, for an error message."""
    shown = [
        repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..." for v in values.unique().tolist()
    ]
    return ", ".join(shown[:limit])


def align_on_ids(
    submission: pd.DataFrame,
    answers: pd.DataFrame,
    id_column: str,
    columns: list[str] | None = None,
    *,
    any_row_order: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both frames sorted by `id_column`, once the submission is known to hold exactly the ids.

    Ids compare by value, so 3.0 in a submission matches 3 in the answers (as in MLE-bench).
    The sort is stable: rows sharing an id keep their order, so a submission listed in the
    answers' order is paired row for row even where ids repeat. For cached answers the same
    frames usually come without sorting (see id_order). With `columns`, both frames hold only
    those (moving fewer values, which is most of the cost for millions of rows). Submission
    ids held as Arrow strings (CompetitionSpec.arrow_text_columns) are paired as such where
    they match; everything else sees the reference's object column. With `any_row_order`, for
    a metric whose value depends only on which rows pair up, frames whose ids already pair row
    for row come back in their own order, unsorted.
    """
    require_columns(submission, [id_column])
    require_same_length(submission, answers)
    # Without the column (or with it twice) the reference path raises as it always has.
    answers_ids = answers[id_column] if id_column in answers.columns else None
    answers_order = ORDERS.get(answers_ids) if isinstance(answers_ids, pd.Series) else None
    ids = submission[id_column]
    arrow_ids = arrow_cells(ids) if isinstance(ids, pd.Series) else None
    # Only where the ids match; any other outcome is decided on the reference's object ids.
    if arrow_ids is not None and answers_order is not None and columns and id_column not in columns:
        positions = arrow_positions(arrow_ids, answers_order)
        if positions is not None:
            submission = object_text(_columns(submission, columns))
            return _paired(submission, answers, columns, positions, answers_order, any_row_order)
    submission = object_text(submission)
    submission_ids = submission[id_column]
    if answers_order is not None and isinstance(submission_ids, pd.Series):
        try:
            positions = sorted_positions(submission_ids, answers[id_column], answers_order)
        except IdsDiffer:
            raise InvalidSubmission(
                _id_mismatch_message(submission[id_column], answers[id_column])
            ) from None
        if positions is not None:
            submission = _columns(submission, columns)
            return _paired(submission, answers, columns, positions, answers_order, any_row_order)
    try:
        sub = submission.sort_values(id_column, kind="stable", ignore_index=True)
    except TypeError as exc:
        raise InvalidSubmission(
            f"Submission column {id_column!r} mixes values that cannot be ordered."
        ) from exc
    ans = answers.sort_values(id_column, kind="stable", ignore_index=True)
    if (sub[id_column].to_numpy() != ans[id_column].to_numpy()).any():
        raise InvalidSubmission(_id_mismatch_message(submission[id_column], answers[id_column]))
    return _columns(sub, columns), _columns(ans, columns)


def _columns(frame: pd.DataFrame, columns: list[str] | None) -> pd.DataFrame:
    return frame if columns is None else frame[columns]


def _paired(
    submission: pd.DataFrame,
    answers: pd.DataFrame,
    columns: list[str] | None,
    positions: np.ndarray,
    answers_order: IdOrder,
    any_row_order: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The submission's rows at `positions` beside the answers' in id order: the pairs, in
    the order the reference's sort gives them."""
    if any_row_order and positions is answers_order.order:
        # Both hold the ids in the same order: each row already sits beside its own.
        return submission, _columns(answers, columns)
    return (
        submission.take(positions).reset_index(drop=True),
        _columns(answers, columns).take(answers_order.order).reset_index(drop=True),
    )


def _id_mismatch_message(sub_ids: pd.Series, ans_ids: pd.Series) -> str:
    parts = [f"Submission column {sub_ids.name!r} does not hold exactly the expected ids."]
    unknown = sub_ids[~sub_ids.isin(ans_ids)]
    if len(unknown):
        parts.append(f"{len(unknown)} row(s) have unexpected ids, e.g. {_examples(unknown)}.")
    repeated = sub_ids[sub_ids.duplicated()]
    if len(repeated):
        parts.append(f"{len(repeated)} row(s) repeat an id, e.g. {_examples(repeated)}.")
    missing = int((~ans_ids.isin(sub_ids)).sum())
    if missing:
        parts.append(f"{missing} expected id(s) are missing.")
    return " ".join(parts)


def _reject_non_finite(column: str, values: pd.Series) -> None:
    if values.isna().any():
        rows = values.index[values.isna()].tolist()[:5]
        raise InvalidSubmission(
            f"Submission column {column!r} has {int(values.isna().sum())} missing/NaN value(s), "
            f"e.g. in data row(s) {rows} (0-based)."
        )
    infinite = values[np.isinf(values)]
    if len(infinite):
        raise InvalidSubmission(
            f"Submission column {column!r} has infinite value(s): {_examples(infinite)}."
        )


def require_probabilities(submission: pd.DataFrame, columns: list[str]) -> None:
    """Each column is numeric (or boolean), has no NaN and lies within [0, 1].

    Mirrors MLE-bench's AUC preparation, which rejects non-numeric columns outright (no
    string-to-number conversion) and out-of-range values; NaN fails there inside the metric.
    """
    require_columns(submission, columns)
    for column in columns:
        values = submission[column]
        if not pd.api.types.is_numeric_dtype(values):
            raise InvalidSubmission(
                f"Submission column {column!r} must be numeric, but holds values such as "
                f"{_examples(_non_numbers(values))}."
            )
        values = values.astype(float)
        _reject_non_finite(column, values)
        outside = values[(values < 0) | (values > 1)]
        if len(outside):
            raise InvalidSubmission(
                f"Submission column {column!r} must hold probabilities in [0, 1], but has "
                f"{len(outside)} value(s) outside, e.g. {_examples(outside)}."
            )


def finite_scores(submission: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The columns as a float array of shape (rows, len(columns)); every value must be finite.

    Text converts the way Python's float() does (what scikit-learn and `astype(float)` in
    MLE-bench's graders accept), so only unconvertible text, NaN and infinities are rejected.
    """
    require_columns(submission, columns)
    converted = []
    for column in columns:
        try:
            values = submission[column].astype(float)
        except (TypeError, ValueError) as exc:
            raise InvalidSubmission(
                f"Submission column {column!r} must be numeric, but holds values such as "
                f"{_examples(_non_numbers(submission[column]))}."
            ) from exc
        _reject_non_finite(column, values)
        converted.append(values.to_numpy())
    return np.column_stack(converted) if converted else np.empty((len(submission), 0))


def _non_numbers(values: pd.Series) -> pd.Series:
    """The values that do not read as numbers (all values if each one does, e.g. text "0.5")."""
    bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
    return bad if len(bad) else values


def require_exact_columns(submission: pd.DataFrame, columns: list[str]) -> None:
    """The submission has these columns (in any order) and no others."""
    require_columns(submission, columns)
    extra = [c for c in submission.columns if c not in columns]
    if extra:
        raise InvalidSubmission(
            f"Submission has unexpected column(s) {extra}; expected exactly {columns}."
        )


def probability_auc_inputs(
    submission: pd.DataFrame,
    answers: pd.DataFrame,
    id_column: str,
    label_columns: list[str],
    *,
    any_row_order: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted probabilities, row-aligned by id, as two (rows, labels) arrays.

    The equivalent of MLE-bench's AUC preparation (`prepare_for_auroc_metric`): the id and
    label columns must be present, row counts equal, predictions numeric probabilities in
    [0, 1], and the ids exactly the expected ones. Extra submission columns are ignored.
    `any_row_order` is align_on_ids': only for a metric whose value, to the bit, does not
    depend on the rows' order (see roc_auc_inputs), never for a mean over rows.
    """
    require_columns(submission, [id_column, *label_columns])
    require_same_length(submission, answers)
    require_probabilities(submission, label_columns)
    sub, ans = align_on_ids(
        submission, answers, id_column, label_columns, any_row_order=any_row_order
    )
    return ans.to_numpy(), sub.to_numpy(dtype=float)


def roc_auc_inputs(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, label_columns: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """probability_auc_inputs for ROC AUC, rows in any order.

    A column's ROC AUC is built from the scores sorted and the counts of each label at the
    end of each run of equal scores (metrics/auc.py; scikit-learn's roc_curve alike), all
    whole numbers: it depends on which label pairs with which score, not on the rows' order,
    to the bit. So frames whose ids already pair row for row skip the sort's permutation.
    """
    return probability_auc_inputs(submission, answers, id_column, label_columns, any_row_order=True)


@contextmanager
def rejected_by_metric(message: str) -> Iterator[None]:
    """Report a metric library's ValueError/TypeError as InvalidSubmission(message).

    The library's own text can quote the answers (e.g. scikit-learn lists the labels found in
    y_true), so only our message, about the submission, reaches the agent.
    """
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise InvalidSubmission(message) from exc


def require_rows_sum_to_one(
    submission: pd.DataFrame, columns: list[str], *, decimals: int | None = None
) -> None:
    """Each row of these (already numeric) columns sums to one.

    With `decimals`, the sum rounded to that many decimals must equal 1 (numpy rounding);
    without, it must be within np.isclose(atol=1e-6) of 1. Both rules occur in MLE-bench.
    """
    sums = submission[columns].sum(axis=1)
    ok = sums.round(decimals).eq(1) if decimals is not None else np.isclose(sums, 1, atol=1e-6)
    if not np.all(ok):
        bad = sums[~np.asarray(ok)]
        raise InvalidSubmission(
            f"Each row's probabilities in {columns if len(columns) <= 6 else 'the class columns'} "
            f"must sum to 1, but {len(bad)} row(s) do not, e.g. data row(s) "
            f"{bad.index.tolist()[:5]} (0-based) sum to {_examples(bad)}."
        )


def labels_by_id(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, target_column: str
) -> tuple[np.ndarray, np.ndarray]:
    """(expected, predicted) labels paired by id, both in id order.

    The equivalent of MLE-bench's accuracy preparation (`prepare_for_accuracy_metric`): both
    columns present, row counts equal, ids exactly the expected ones; other columns ignored.
    """
    require_columns(submission, [id_column, target_column])
    sub, ans = align_on_ids(submission, answers, id_column, [target_column])
    return ans[target_column].to_numpy(), sub[target_column].to_numpy()


def label_accuracy(y_true: np.ndarray | list, y_pred: np.ndarray | list, column: str) -> float:
    """Accuracy of predicted labels, rejecting predictions scikit-learn cannot score.

    scikit-learn refuses missing values and predictions of another kind than the labels (text
    against numbers, fractional numbers against classes); MLE-bench then yields no score.
    """
    predicted = pd.Series(y_pred, dtype=object if isinstance(y_pred, list) else None)
    if predicted.isna().any():
        raise InvalidSubmission(
            f"Submission column {column!r} has {int(predicted.isna().sum())} missing value(s); "
            "every row needs a predicted label."
        )
    with rejected_by_metric(
        f"Submission column {column!r} holds values that cannot be compared with the expected "
        f"labels (type {predicted.infer_objects().dtype}, e.g. {_examples(predicted)})."
    ):
        return accuracy(y_true, y_pred)


def one_hot_log_loss_inputs(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str
) -> tuple[np.ndarray, np.ndarray]:
    """One-hot labels and predicted class probabilities, paired by id, as (rows, classes) arrays.

    The equivalent of MLE-bench's `one_hot_dfs_to_log_loss_inputs` without softmax: `answers`
    holds the id column and one 0/1 column per class; the submission must have all of them
    (extra columns are ignored). Probability checks differ by competition and are left to it.
    """
    classes = [c for c in answers.columns if c != id_column]
    require_columns(submission, [id_column, *classes])
    sub, ans = align_on_ids(submission, answers, id_column, classes)
    return ans.to_numpy(), sub.to_numpy()


def integer_classes(submission: pd.DataFrame, column: str) -> np.ndarray:
    """The column as int64 class labels; every value must be a finite whole number.

    scikit-learn's kappa and MCC accept 2.0 as class 2 but reject 2.5 (a continuous target),
    text mixed with numeric labels, NaN and infinities; this rejects the same with a clearer
    message.
    """
    values = finite_scores(submission, [column])[:, 0]
    fractional = values[values != np.round(values)]
    if len(fractional):
        raise InvalidSubmission(
            f"Submission column {column!r} must hold whole-number class labels, but has "
            f"{len(fractional)} fractional value(s), e.g. {_examples(pd.Series(fractional))}."
        )
    return values.astype(np.int64)


def truncated_integers(submission: pd.DataFrame, column: str) -> np.ndarray:
    """The column converted value by value with Python's int(), as MLE-bench's graders do.

    So 3.7 becomes 3 and the text "12" becomes 12, while NaN, infinities and other text are
    rejected.
    """
    require_columns(submission, [column])
    values = submission[column]
    if pd.api.types.is_numeric_dtype(values):
        _reject_non_finite(column, values.astype(float))
        return np.trunc(values.to_numpy(dtype=float)).astype(np.int64)
    converted = []
    for value in values:  # text only: rare, and int() on text has no vectorised equivalent
        try:
            converted.append(int(value))
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidSubmission(
                f"Submission column {column!r} must hold integers, but has {value!r}."
            ) from exc
    return np.asarray(converted, dtype=np.int64)


def label_sets_text(submission: pd.DataFrame, column: str) -> pd.Series:
    """The column as whitespace-separated label text, with empty cells as ''.

    A column whose every cell holds one numeric label is read by pandas as numbers; those are
    turned back into their integer text ("13", not "13.0"), so such a submission is graded
    like its text form rather than rejected.
    """
    require_columns(submission, [column])
    values = submission[column]
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype(float)
        whole = numbers.isna() | (numbers == np.round(numbers))
        if not whole.all():
            raise InvalidSubmission(
                f"Submission column {column!r} must hold space-separated labels, but has "
                f"number(s) such as {_examples(values[~whole])}."
            )
        return values.astype("Int64").astype(str).where(values.notna(), "")
    return values.fillna("").astype(str)


def accuracy_by_id(
    submission: pd.DataFrame,
    answers: pd.DataFrame,
    *,
    id_column: str,
    target_column: str,
    as_text: bool = False,
) -> float:
    """Accuracy of `target_column` with rows paired on `id_column` (MLE-bench's common case).

    With `as_text` both sides compare as pandas' str() of each value (NaN becomes "nan"), so no
    prediction is rejected for its type, as in the text-normalisation graders.
    """
    y_true, y_pred = labels_by_id(submission, answers, id_column, target_column)
    if as_text:
        return exact_match_rate(pd.Series(y_true).astype(str), pd.Series(y_pred).astype(str))
    return label_accuracy(y_true, y_pred, target_column)


def require_text(submission: pd.DataFrame, column: str, allow_missing: bool) -> None:
    """Every value of the column is a string (empty cells, read as NaN, only if allowed).

    MLE-bench's text graders call string methods on each value, so a number or a column that
    pandas parsed as numeric fails there.
    """
    require_columns(submission, [column])
    values = submission[column]
    bad = values[~values.map(type).eq(str) & ~(allow_missing & values.isna())]
    if len(bad):
        what = "text" if allow_missing else "non-empty text"
        raise InvalidSubmission(
            f"Submission column {column!r} must hold {what}, but {len(bad)} row(s) do not, "
            f"e.g. {_examples(bad)}."
        )


def submission_in_answer_order(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str
) -> pd.DataFrame:
    """The submission's rows reordered to pair with the answers' rows, in the answers' order.

    Accepts exactly the ids `align_on_ids` accepts (3.0 matches 3), but pairs them by hashing
    instead of sorting both frames, which matters for millions of text ids. Graders that merge
    onto the answers also sum in the answers' order, so this keeps their sums bit-identical.
    """
    require_columns(submission, [id_column])
    require_same_length(submission, answers)
    sub_ids = pd.Index(submission[id_column])
    positions = np.full(len(answers), -1)
    if not sub_ids.has_duplicates:
        positions = sub_ids.get_indexer(answers[id_column])
    if (positions < 0).any():
        raise InvalidSubmission(_id_mismatch_message(submission[id_column], answers[id_column]))
    return submission.iloc[positions].reset_index(drop=True)


def rle_runs_per_row(
    ids: pd.Series, rles: pd.Series, n_pixels: list[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The runs of each submitted RLE mask (see metrics.masks.rle_runs), row by row.

    `n_pixels` gives each row's image size; a malformed mask names the row's id.
    """
    from services.grader.metrics.masks import MalformedRLE, rle_runs

    runs = []
    for row_id, rle, size in zip(ids, rles, n_pixels, strict=True):
        try:
            runs.append(rle_runs(rle, size))
        except MalformedRLE as exc:
            raise InvalidSubmission(
                f"Submission row {ids.name}={row_id!r} has an invalid mask in column "
                f"{rles.name!r}: {exc}."
            ) from None
    return runs


def require_unique(submission: pd.DataFrame, column: str) -> None:
    """No value of the column appears twice."""
    require_columns(submission, [column])
    repeated = submission.loc[submission[column].duplicated(), column]
    if len(repeated):
        raise InvalidSubmission(
            f"Submission column {column!r} repeats {len(repeated)} value(s), "
            f"e.g. {_examples(repeated)}; each must appear once."
        )


def to_numeric_array(submission: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The columns, converted by pd.to_numeric, as a (rows, len(columns)) float array.

    For graders that convert with pd.to_numeric, which is stricter about text than float().
    NaN and infinities pass through: where they matter, the metric rejects them.
    """
    require_columns(submission, columns)
    try:
        return submission[columns].apply(pd.to_numeric).to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        bad = [c for c in columns if not pd.api.types.is_numeric_dtype(submission[c])]
        raise InvalidSubmission(
            f"Submission column {bad[0]!r} must be numeric, but holds values such as "
            f"{_examples(_non_numbers(submission[bad[0]]))}."
        ) from exc


def require_known_values(
    submission: pd.DataFrame, column: str, known: pd.Index | list, expected: str
) -> None:
    """Every value of the column is one of `known`; `expected` describes them for the message
    (it must not list answer values)."""
    require_columns(submission, [column])
    unknown = submission.loc[~submission[column].isin(known), column]
    if len(unknown):
        raise InvalidSubmission(
            f"Submission column {column!r} has {len(unknown)} value(s) that are not "
            f"{expected}, e.g. {_examples(unknown)}."
        )


def one_hot_probability_log_loss(
    submission: pd.DataFrame,
    answers: pd.DataFrame,
    classes: list[str],
    *,
    decimals: int | None = None,
) -> float:
    """Log loss of per-class probabilities against one-hot answers, rows paired on `id`.

    Each class column must hold probabilities in [0, 1] and each row must sum to one (see
    require_rows_sum_to_one for `decimals`); no softmax is applied.
    """
    require_probabilities(submission, classes)
    require_rows_sum_to_one(submission, classes, decimals=decimals)
    return log_loss(*one_hot_log_loss_inputs(submission, answers, "id"))


def kappa_by_id(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, target_column: str
) -> float:
    """Quadratic weighted kappa of whole-number grades, rows paired by id."""
    require_columns(submission, [id_column, target_column])
    if submission.empty:
        raise InvalidSubmission("Submission has no rows.")
    sub, ans = align_on_ids(submission, answers, id_column)
    predicted = integer_classes(sub, target_column)
    return quadratic_weighted_kappa(ans[target_column].to_numpy(), predicted)


def macro_f1_by_id(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, target_column: str
) -> float:
    """Macro F1 of integer category ids; values convert with int(), so 3.7 counts as 3."""
    require_columns(submission, [id_column, target_column])
    sub, ans = align_on_ids(submission, answers, id_column)
    return macro_f1(truncated_integers(ans, target_column), truncated_integers(sub, target_column))


def label_set_f1_by_id(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, labels_column: str
) -> float:
    """Micro F1 of space-separated label sets; an empty cell predicts no label."""
    require_columns(submission, [id_column, labels_column])
    sub, ans = align_on_ids(submission, answers, id_column)
    return micro_f1_of_label_sets(
        ans[labels_column].fillna("").astype(str), label_sets_text(sub, labels_column)
    )
