"""SHA-256 checksums of every built data file, recorded in checksums.yaml.

The data comes from other packages, so a new version of one could change a competition
without anyone noticing; building verifies the files against the recorded sums instead.
scripts/make_builtin_leaderboards.py records them together with the leaderboards, which are
only valid for exactly this data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from services.common.errors import FailedPreconditionError

CHECKSUMS_FILE = Path(__file__).with_name("checksums.yaml")
DATA_FOLDERS = ("public", "private")
REMAKE = "python scripts/make_builtin_leaderboards.py"


def data_checksums(folder: Path) -> dict[str, str]:
    """{"public/train.csv": sha256, ...} for every file under public/ and private/."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for side in DATA_FOLDERS
        for path in sorted((folder / side).rglob("*"))
        if path.is_file()
    }


def recorded() -> dict[str, dict[str, str]]:
    if not CHECKSUMS_FILE.is_file():
        return {}
    return yaml.safe_load(CHECKSUMS_FILE.read_text(encoding="utf-8")) or {}


def record(checksums: dict[str, dict[str, str]]) -> None:
    CHECKSUMS_FILE.write_text(
        "# Written by scripts/make_builtin_leaderboards.py; do not edit by hand.\n"
        + yaml.safe_dump(checksums, sort_keys=True),
        encoding="utf-8",
    )


def verify(competition_id: str, folder: Path) -> None:
    """Raises, naming each differing file, unless the built data is exactly the recorded data."""
    expected = recorded().get(competition_id)
    if expected is None:
        raise FailedPreconditionError(
            f"no checksums are recorded for built-in competition {competition_id!r}; "
            f"run `{REMAKE}`",
            reason="BUILTIN_CHECKSUMS_MISSING",
            metadata={"competition_id": competition_id},
        )
    actual = data_checksums(folder)
    differing = sorted(
        name for name in expected.keys() | actual.keys() if expected.get(name) != actual.get(name)
    )
    if differing:
        raise FailedPreconditionError(
            f"built-in competition {competition_id!r} does not match its recorded checksums "
            f"({', '.join(differing)}): a package it is built from has probably changed its "
            f"data. Install the versions in services/builtin/leaderboards/provenance.yaml, or "
            f"run `{REMAKE}` to remake the leaderboards for the new data.",
            reason="BUILTIN_CHECKSUM_MISMATCH",
            metadata={"competition_id": competition_id, "files": ",".join(differing)},
        )
