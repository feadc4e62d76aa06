"""mleb's bundled baseline agent: a plain scikit-learn solution for a tabular or text CSV task.

It runs inside a sandbox as MLE-bench agents do. It reads train.csv, test.csv and
sample_submission.csv from the data folder, works out the task from them, picks the better
of two models by 3-fold cross-validation, writes the submission, and checks it with the
validation endpoint before it finishes. It needs only numpy, pandas and scikit-learn; the
`mleb` client package is used for validation when it is installed.

Environment (MLE-bench's paths are the defaults; the local backend passes its own):
  DATA_DIR          /home/data
  SUBMISSION_DIR    /home/submission           (the submission is submission.csv there)
  CODE_DIR          /home/code                 (a copy of this script is left there)
  MLEB_COMPETITION_ID or COMPETITION_ID        the competition, for gRPC validation
  MLEB_GRADER_ADDR, MLEB_SANDBOX_TOKEN         validation over gRPC (tried first)
  MLEB_VALIDATE_SOCKET                         validation over HTTP on a Unix socket
  MLEB_VALIDATE_URL  http://localhost:5000/validate   validation over HTTP

Exit status: 0 when the submission is valid, 1 when the validator rejects it, 2 when it
could not be checked or the data is not a task this agent handles.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC

STARTED = time.monotonic()
# An object column whose values average more characters than this is free text.
TEXT_MIN_LENGTH = 12


def say(message: str) -> None:
    print(f"[baseline-agent {time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


class Unhandled(Exception):
    """The data is not a task this agent knows how to solve."""


# Understanding the task


def _is_probability(sample: pd.Series, target: pd.Series) -> bool:
    return (
        pd.api.types.is_float_dtype(sample)
        and sample.between(0, 1).all()
        and set(pd.unique(target)) <= {0, 1}
    )


def task_of(sample: pd.Series, target: pd.Series) -> str:
    """The task: probability, classification or regression, judged by the sample's values."""
    if _is_probability(sample, target):
        return "probability"
    if pd.api.types.is_float_dtype(sample) and pd.api.types.is_numeric_dtype(target):
        return "regression"
    return "classification"


def column_kinds(features: pd.DataFrame) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {"numeric": [], "categorical": [], "text": []}
    for name, values in features.items():
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            kinds["numeric"].append(name)
        elif values.astype(str).str.len().mean() > TEXT_MIN_LENGTH:
            kinds["text"].append(name)
        else:
            kinds["categorical"].append(name)
    return kinds


def preprocessor(kinds: dict[str, list[str]]) -> ColumnTransformer:
    # A text column goes in by name (a string), which the vectoriser needs; others by list.
    parts: list[tuple[str, object, str | list[str]]] = []
    if kinds["numeric"]:
        numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        parts.append(("numeric", numeric, kinds["numeric"]))
    if kinds["categorical"]:
        categorical = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="missing"),
            OneHotEncoder(handle_unknown="ignore"),
        )
        parts.append(("categorical", categorical, kinds["categorical"]))
    for name in kinds["text"]:
        text = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
        parts.append((f"text_{name}", text, name))
    return ColumnTransformer(parts)


def candidates(task: str, kinds: dict[str, list[str]]) -> dict[str, object]:
    """Two models worth comparing for the task, each behind its own preprocessing."""
    if task == "probability":
        models = {
            "logistic regression": LogisticRegression(max_iter=2000),
            "gradient boosting": HistGradientBoostingClassifier(random_state=0),
        }
    elif task == "regression":
        models = {
            "ridge": Ridge(alpha=1.0),
            "gradient boosting": HistGradientBoostingRegressor(random_state=0),
        }
    elif kinds["text"] and not kinds["numeric"]:
        # Naive Bayes needs the non-negative features TF-IDF and one-hot columns give.
        models = {"linear svm": LinearSVC(random_state=0), "naive bayes": MultinomialNB(alpha=0.1)}
    elif kinds["text"]:
        models = {"linear svm": LinearSVC(random_state=0)}
    else:
        models = {"svm rbf": SVC(C=10), "logistic regression": LogisticRegression(max_iter=2000)}
    if kinds["text"] or kinds["categorical"]:
        # Sparse features: gradient boosting wants dense input, so keep to the linear models.
        models = {n: m for n, m in models.items() if "boosting" not in n} or models
    return {name: make_pipeline(preprocessor(kinds), model) for name, model in models.items()}


SCORERS = {
    "probability": "neg_log_loss",
    "regression": "neg_root_mean_squared_error",
    "classification": "f1_macro",
}


def choose(task: str, models: dict[str, object], features: pd.DataFrame, target: pd.Series):
    folds = (
        KFold(3, shuffle=True, random_state=0)
        if task == "regression"
        else StratifiedKFold(3, shuffle=True, random_state=0)
    )
    best_name, best_score = "", -np.inf
    for name, model in models.items():
        scores = cross_val_score(model, features, target, cv=folds, scoring=SCORERS[task])
        say(f"cv {name}: {SCORERS[task]} {scores.mean():.5f} (+/- {scores.std():.5f})")
        if scores.mean() > best_score:
            best_name, best_score = name, scores.mean()
    return best_name, models[best_name]


# Validation: gRPC first (as mleb-validate does), then MLE-bench's HTTP endpoint.


def _multipart(path: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    body = head.encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._socket_path)


def validate_http(path: Path, timeout: float = 300.0) -> tuple[bool, str]:
    socket_path = os.environ.get("MLEB_VALIDATE_SOCKET", "")
    url = urllib.parse.urlsplit(
        os.environ.get("MLEB_VALIDATE_URL", "http://localhost:5000/validate")
    )
    if socket_path:
        connection: http.client.HTTPConnection = _UnixConnection(socket_path, timeout)
        target = "/validate"
    else:
        connection = http.client.HTTPConnection(
            url.hostname or "localhost", url.port or 80, timeout=timeout
        )
        target = url.path or "/validate"
    body, content_type = _multipart(path)
    try:
        connection.request("POST", target, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        reply = json.loads(response.read().decode() or "{}")
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {reply.get('details') or reply}")
    message = str(reply.get("result", ""))
    return message.startswith("Submission is valid"), message


def validate_grpc(path: Path) -> tuple[bool, str] | None:
    """None when gRPC validation is not set up here (no client package or no address)."""
    address = os.environ.get("MLEB_GRADER_ADDR", "")
    competition = os.environ.get("MLEB_COMPETITION_ID") or os.environ.get("COMPETITION_ID", "")
    if not address or not competition:
        return None
    try:
        from mleb.client import Client
    except ImportError:
        return None
    token = os.environ.get("MLEB_SANDBOX_TOKEN") or os.environ.get("MLEB_TOKEN", "")
    with Client(grader=address, token=token, timeout=300.0) as client:
        reply = client.validate_submission(competition, path)
    return reply.valid, reply.message


def validate(path: Path) -> tuple[bool, str]:
    try:
        result = validate_grpc(path)
        if result is not None:
            say("validated over gRPC (MLEB_GRADER_ADDR)")
            return result
    except Exception as exc:  # any failure: the HTTP endpoint may still answer
        say(f"gRPC validation failed ({exc}); trying the HTTP endpoint")
    result = validate_http(path)
    say("validated over HTTP")
    return result


# The run


def solve(data_dir: Path) -> pd.DataFrame:
    train = pd.read_csv(data_dir / "train.csv")
    test = pd.read_csv(data_dir / "test.csv")
    sample = pd.read_csv(data_dir / "sample_submission.csv")
    say(f"read {len(train)} training rows, {len(test)} test rows from {data_dir}")
    if sample.shape[1] != 2:
        raise Unhandled("the sample submission must have one id column and one target column")
    id_column, target_column = sample.columns
    if target_column not in train.columns:
        raise Unhandled(f"train.csv has no target column {target_column!r}")
    feature_columns = [c for c in test.columns if c != id_column]
    features, target = train[feature_columns], train[target_column]
    task = task_of(sample[target_column], target)
    kinds = column_kinds(features)
    say(f"task: {task} of {target_column!r}; features: "
        + ", ".join(f"{len(v)} {k}" for k, v in kinds.items() if v))  # fmt: skip
    name, model = choose(task, candidates(task, kinds), features, target)
    say(f"training {name} on all {len(train)} rows")
    model.fit(features, target)
    if task == "probability":
        positive = list(model.classes_).index(1)
        predictions = model.predict_proba(test[feature_columns])[:, positive]
    else:
        predictions = model.predict(test[feature_columns])
    submission = pd.DataFrame({id_column: test[id_column], target_column: predictions})
    return submission.set_index(id_column).loc[sample[id_column]].reset_index()


def main() -> int:
    data_dir = Path(os.environ.get("DATA_DIR", "/home/data"))
    submission_dir = Path(os.environ.get("SUBMISSION_DIR", "/home/submission"))
    code_dir = Path(os.environ.get("CODE_DIR", "/home/code"))
    try:
        submission = solve(data_dir)
    except (Unhandled, FileNotFoundError) as exc:
        say(f"cannot solve this task: {exc}")
        return 2
    submission_dir.mkdir(parents=True, exist_ok=True)
    path = submission_dir / "submission.csv"
    submission.to_csv(path, index=False)
    say(f"wrote {len(submission)} predictions to {path}")
    if code_dir.is_dir() and os.access(code_dir, os.W_OK):
        shutil.copy(__file__, code_dir / Path(__file__).name)
    try:
        valid, message = validate(path)
    except Exception as exc:
        say(f"could not validate the submission: {exc}")
        return 2
    say(f"validation: {message}")
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
