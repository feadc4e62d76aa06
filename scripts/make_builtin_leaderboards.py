"""Remakes the built-in competitions' synthetic leaderboards and data checksums.

    python scripts/make_builtin_leaderboards.py [--competitions ID ...]

For each built-in competition (services/builtin), this splits the packaged data, trains every
baseline of services/builtin/baselines.py on train.csv, scores it on the private answers with
the grader's own code, and writes:

- services/builtin/leaderboards/<id>.csv: the baselines, best first;
- services/builtin/checksums.yaml: SHA-256 of each built data file, which every build checks;
- services/builtin/leaderboards/provenance.yaml: the package versions that made them.

The results depend only on the packaged data and the package versions recorded there; run it
again whenever one of those changes, and commit what it writes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mleb.ranking import medal_positions

from services.builtin import baselines, checksums
from services.builtin.catalog import selected
from services.builtin.definition import prepare
from services.builtin.folder import LEADERBOARDS_DIR, leaderboard_path, write_data

PROVENANCE_FILE = LEADERBOARDS_DIR / "provenance.yaml"
PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "chatterbot-corpus")


def _provenance() -> dict:
    return {
        "made_by": "python scripts/make_builtin_leaderboards.py",
        "python": platform.python_version(),
        "packages": {name: importlib.metadata.version(name) for name in PACKAGES},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--competitions", nargs="*", default=[], help="only these ids")
    args = parser.parse_args(argv)
    recorded = checksums.recorded()
    with tempfile.TemporaryDirectory() as scratch:
        for builtin in selected(args.competitions):
            started = time.monotonic()
            definition = builtin.definition
            prepared = prepare(definition)
            folder = Path(scratch) / definition.id
            write_data(prepared, folder)
            recorded[definition.id] = checksums.data_checksums(folder)
            board = baselines.leaderboard(definition, prepared)
            board.to_csv(leaderboard_path(definition.id), index=False, lineterminator="\n")
            gold, silver, bronze = (board.score[p - 1] for p in medal_positions(len(board)))
            print(
                f"{definition.id}: {len(board)} baselines, best {board.score.iloc[0]}, "
                f"worst {board.score.iloc[-1]}; gold {gold}, silver {silver}, bronze {bronze} "
                f"({time.monotonic() - started:.1f}s)"
            )
    checksums.record(recorded)
    PROVENANCE_FILE.write_text(
        "# Written by scripts/make_builtin_leaderboards.py; do not edit by hand.\n"
        + yaml.safe_dump(_provenance(), sort_keys=False),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
