"""Synthetic leaderboards: a spread of scikit-learn baselines, scored exactly as the grader does.

Built-in competitions have no human teams to rank against, so each gets a leaderboard of
baseline models in several configurations. Each entry trains on its own random 85% of
train.csv, drawn with its seed (which also seeds the model), so entries differ as different
teams' would. Scores go through the grader's own reading and scoring code.
scripts/make_builtin_leaderboards.py runs this and commits the result.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge, SGDClassifier
from sklearn.naive_bayes import GaussianNB, MultinomialNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from services.builtin.definition import Definition, Prepared, Task
from services.grader.generic_specs import generic_spec
from services.grader.reading import read_answers
from services.grader.scoring import score_source

TRAIN_FRACTION = 0.85
SOURCE_NOTE = "synthetic baseline (scripts/make_builtin_leaderboards.py)"


@dataclass(frozen=True)
class Baseline:
    name: str
    estimator: BaseEstimator
    seed: int

    @property
    def team_name(self) -> str:
        return f"baseline: {self.name} seed {self.seed}"


def _scaled(estimator: BaseEstimator) -> BaseEstimator:
    return make_pipeline(StandardScaler(), estimator)


def _grid(configs: list[tuple[str, BaseEstimator]], seeds: range) -> Iterator[Baseline]:
    for name, estimator in configs:
        for seed in seeds:
            yield Baseline(name, estimator, seed)


def _binary() -> Iterator[Baseline]:
    yield from _grid([("prior", DummyClassifier(strategy="prior"))], range(2))
    yield from _grid(
        [(f"logistic C={c}", _scaled(LogisticRegression(C=c, max_iter=2000)))
         for c in (0.01, 0.1, 1, 10, 100)], range(3))  # fmt: skip
    yield from _grid(
        [(f"knn k={k}", _scaled(KNeighborsClassifier(n_neighbors=k))) for k in (3, 5, 15, 45)],
        range(2),
    )
    yield from _grid([("gaussian naive bayes", GaussianNB())], range(3))
    yield from _grid(
        [(f"decision tree depth={d}", DecisionTreeClassifier(max_depth=d)) for d in (2, 4)],
        range(2),
    )
    yield from _grid(
        [(f"random forest trees={n} depth={d}", RandomForestClassifier(n_estimators=n, max_depth=d))
         for n in (30, 300) for d in (4, None)], range(2))  # fmt: skip
    yield from _grid(
        [(f"gradient boosting lr={lr}", HistGradientBoostingClassifier(learning_rate=lr))
         for lr in (0.03, 0.1, 0.3)], range(2))  # fmt: skip


def _regression() -> Iterator[Baseline]:
    yield from _grid([("mean", DummyRegressor())], range(2))
    yield from _grid([("linear regression", LinearRegression())], range(3))
    yield from _grid(
        [(f"ridge alpha={a}", _scaled(Ridge(alpha=a))) for a in (0.1, 1, 10, 100)], range(2)
    )
    yield from _grid(
        [(f"lasso alpha={a}", _scaled(Lasso(alpha=a))) for a in (0.1, 1, 10)], range(2)
    )
    yield from _grid(
        [(f"knn k={k}", _scaled(KNeighborsRegressor(n_neighbors=k))) for k in (5, 15, 40)],
        range(2),
    )
    yield from _grid(
        [(f"decision tree depth={d}", DecisionTreeRegressor(max_depth=d)) for d in (3, 6)],
        range(2),
    )
    yield from _grid(
        [(f"random forest depth={d}", RandomForestRegressor(n_estimators=100, max_depth=d))
         for d in (4, None)], range(3))  # fmt: skip
    yield from _grid(
        [(f"gradient boosting lr={lr}", HistGradientBoostingRegressor(learning_rate=lr))
         for lr in (0.03, 0.1)], range(3))  # fmt: skip


def _multiclass() -> Iterator[Baseline]:
    yield from _grid([("most frequent", DummyClassifier(strategy="most_frequent"))], range(2))
    yield from _grid(
        [(f"logistic C={c}", _scaled(LogisticRegression(C=c, max_iter=2000)))
         for c in (0.001, 0.01, 0.1, 1)], range(2))  # fmt: skip
    yield from _grid(
        [(f"knn k={k}", KNeighborsClassifier(n_neighbors=k)) for k in (1, 3, 7, 15)], range(2)
    )
    yield from _grid([("gaussian naive bayes", GaussianNB())], range(2))
    yield from _grid([(f"svm rbf C={c}", _scaled(SVC(C=c))) for c in (0.1, 1, 10)], range(2))
    yield from _grid(
        [(f"decision tree depth={d}", DecisionTreeClassifier(max_depth=d)) for d in (4, 8, None)],
        range(2),
    )
    yield from _grid(
        [(f"random forest trees={n}", RandomForestClassifier(n_estimators=n)) for n in (20, 200)],
        range(2),
    )


def _tfidf(analyzer: str, ngrams: tuple[int, int]) -> TfidfVectorizer:
    return TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True)


def _text() -> Iterator[Baseline]:
    yield from _grid([("most frequent", DummyClassifier(strategy="most_frequent"))], range(2))
    yield from _grid(
        [(f"naive bayes words alpha={a}",
          make_pipeline(_tfidf("word", (1, 1)), MultinomialNB(alpha=a))) for a in (0.01, 0.1, 1)],
        range(2))  # fmt: skip
    yield from _grid(
        [(f"naive bayes chars 1-3 alpha={a}",
          make_pipeline(_tfidf("char_wb", (1, 3)), MultinomialNB(alpha=a))) for a in (0.01, 0.1)],
        range(2))  # fmt: skip
    yield from _grid(
        [(f"linear svm words C={c}", make_pipeline(_tfidf("word", (1, 1)), LinearSVC(C=c)))
         for c in (0.1, 1)], range(2))  # fmt: skip
    yield from _grid(
        [(f"linear svm chars {lo}-{hi} C={c}",
          make_pipeline(_tfidf("char_wb", (lo, hi)), LinearSVC(C=c)))
         for lo, hi in ((1, 2), (1, 3), (2, 4)) for c in (0.1, 1)], range(2))  # fmt: skip
    yield from _grid(
        [(f"sgd logistic chars 1-3 alpha={a}",
          make_pipeline(_tfidf("char_wb", (1, 3)), SGDClassifier(loss="log_loss", alpha=a)))
         for a in (1e-5, 1e-4)], range(2))  # fmt: skip
    yield from _grid(
        [(f"knn chars 1-3 k={k}",
          make_pipeline(_tfidf("char_wb", (1, 3)), KNeighborsClassifier(k, metric="cosine")))
         for k in (1, 5, 25)], range(2))  # fmt: skip


GRIDS = {
    Task.BINARY_PROBABILITY: _binary,
    Task.REGRESSION: _regression,
    Task.MULTICLASS: _multiclass,
    Task.TEXT: _text,
}


def baselines(task: Task) -> list[Baseline]:
    return list(GRIDS[task]())


def baseline_named(task: Task, team_name: str) -> Baseline:
    """The baseline behind a leaderboard row, to re-run it."""
    found = [b for b in baselines(task) if b.team_name == team_name]
    if not found:
        raise KeyError(f"no {task.value} baseline is called {team_name!r}")
    return found[0]


def _seeded(estimator: BaseEstimator, seed: int) -> BaseEstimator:
    model = clone(estimator)
    model.set_params(
        **{name: seed for name in model.get_params() if name.split("__")[-1] == "random_state"}
    )
    return model


def _features(definition: Definition, frame: pd.DataFrame):
    features = frame.drop(columns=[definition.id_column, definition.target_column], errors="ignore")
    # Text models take the one text column; the others take a numeric matrix.
    return features["text"] if definition.task is Task.TEXT else features.to_numpy(dtype=float)


def predict(definition: Definition, prepared: Prepared, baseline: Baseline) -> pd.DataFrame:
    """The baseline's submission: trained on its seed's share of train.csv."""
    train = prepared.train.sample(frac=TRAIN_FRACTION, random_state=baseline.seed)
    model = _seeded(baseline.estimator, baseline.seed)
    model.fit(_features(definition, train), train[definition.target_column])
    test = _features(definition, prepared.test)
    if definition.task is Task.BINARY_PROBABILITY:
        predictions = model.predict_proba(test)[:, list(model.classes_).index(1)]
    else:
        predictions = model.predict(test)
    ids = prepared.test[definition.id_column]
    return pd.DataFrame({definition.id_column: ids, definition.target_column: predictions})


def grade(definition: Definition, prepared: Prepared, submission: pd.DataFrame) -> float | None:
    """The score the grader would give `submission` (None when it is invalid)."""
    spec = generic_spec(
        definition.id, definition.metric, [definition.id_column], [definition.target_column]
    )
    if spec is None:
        raise ValueError(f"{definition.id}: the grader has no metric {definition.metric!r}")
    answers = read_answers(prepared.answers.to_csv(index=False).encode(), "csv")
    data = io.BytesIO(submission.to_csv(index=False).encode())
    return score_source(spec, data, answers).score


def leaderboard(definition: Definition, prepared: Prepared) -> pd.DataFrame:
    """Every baseline's score, best first (ties broken by team name, for a stable file)."""
    rows = []
    for baseline in baselines(definition.task):
        score = grade(definition, prepared, predict(definition, prepared, baseline))
        if score is None or not np.isfinite(score):
            raise ValueError(f"{definition.id}: {baseline.team_name} made an invalid submission")
        rows.append({"team_name": baseline.team_name, "score": score, "source": SOURCE_NOTE})
    board = pd.DataFrame(rows)
    ascending = definition.lower_is_better
    return board.sort_values(
        ["score", "team_name"], ascending=[ascending, True], kind="stable", ignore_index=True
    )
