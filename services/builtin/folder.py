"""Writes a built-in competition as a folder in mleb's own format (docs/registry.md)."""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

import pandas as pd
import yaml

from services.builtin import checksums
from services.builtin.definition import Definition, Prepared, prepare
from services.common.errors import FailedPreconditionError

PACKAGE_DIR = Path(__file__).parent
DESCRIPTIONS_DIR = PACKAGE_DIR / "descriptions"
LEADERBOARDS_DIR = PACKAGE_DIR / "leaderboards"
ANSWERS = "answers.csv"
SAMPLE_SUBMISSION = "sample_submission.csv"
# Every built-in competition is in this split, and only there: they are not MLE-bench's.
SPLIT = "builtin"


def leaderboard_path(competition_id: str) -> Path:
    return LEADERBOARDS_DIR / f"{competition_id}.csv"


def _csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")


def write_data(prepared: Prepared, folder: Path) -> None:
    """public/{train,test,sample_submission}.csv and private/answers.csv."""
    _csv(prepared.train, folder / "public" / "train.csv")
    _csv(prepared.test, folder / "public" / "test.csv")
    _csv(prepared.sample_submission, folder / "public" / SAMPLE_SUBMISSION)
    _csv(prepared.answers, folder / "private" / ANSWERS)


def _config(definition: Definition) -> dict:
    return {
        "id": definition.id,
        "name": definition.name,
        "metric": definition.metric,
        "id_columns": definition.id_column,
        "target_columns": [definition.target_column],
        "answers": ANSWERS,
        "sample_submission": SAMPLE_SUBMISSION,
        "lower_is_better": definition.lower_is_better,
        "category": definition.category,
        "awards_medals": True,
        "splits": [SPLIT],
    }


def _description_fields(definition: Definition, prepared: Prepared) -> dict[str, str]:
    sample = prepared.sample_submission.head(4).to_csv(index=False, lineterminator="\n")
    labels = sorted(prepared.train[definition.target_column].unique().tolist())
    return {
        "train_rows": str(len(prepared.train)),
        "test_rows": str(len(prepared.test)),
        "sample_head": sample + "etc.",
        "labels": ", ".join(f"`{label}`" for label in labels),
        "label_count": str(len(labels)),
        "source": definition.source,
    }


def _description(name: str, fields: dict[str, str]) -> str:
    return Template((DESCRIPTIONS_DIR / name).read_text(encoding="utf-8")).substitute(fields)


def write_competition(definition: Definition, dest: Path) -> Path:
    """Builds dest/<id>/ from the packaged data, replacing an earlier build there.

    The data files must match checksums.yaml, and the committed leaderboard must exist;
    both are made by scripts/make_builtin_leaderboards.py.
    """
    leaderboard = leaderboard_path(definition.id)
    if not leaderboard.is_file():
        raise FailedPreconditionError(
            f"built-in competition {definition.id!r} has no leaderboard at {leaderboard}; "
            f"run `{checksums.REMAKE}`",
            reason="BUILTIN_LEADERBOARD_MISSING",
        )
    folder = dest / definition.id
    if folder.exists():
        shutil.rmtree(folder)
    prepared = prepare(definition)
    write_data(prepared, folder)
    checksums.verify(definition.id, folder)
    fields = _description_fields(definition, prepared)
    for written, template in (("description.md", ""), ("description_obfuscated.md", ".obfuscated")):
        text = _description(f"{definition.id}{template}.md", fields)
        (folder / written).write_text(text, encoding="utf-8")
    (folder / "competition.yaml").write_text(
        yaml.safe_dump(_config(definition), sort_keys=False), encoding="utf-8"
    )
    shutil.copyfile(leaderboard, folder / "leaderboard.csv")
    return folder
