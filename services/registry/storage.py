"""The registry's files on disk: <data_dir>/competitions/<id>/{public,private}/...

The registry copies data in at import, so it is the one holder of private answers, and every
path a request names is checked to stay inside the competition's public folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from services.common.errors import InvalidArgumentError, invalid_field

COPY_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class CopiedFile:
    path: str  # relative, "/"-separated
    size_bytes: int
    sha256: str
    md5: str  # MLE-bench's checksums are MD5


@dataclass(frozen=True)
class StagedData:
    """Public and private folders copied into a staging area, not yet visible to readers."""

    root: Path
    public: dict[str, CopiedFile]
    private: dict[str, CopiedFile]

    @property
    def public_dir(self) -> Path:
        return self.root / "public"

    @property
    def private_dir(self) -> Path:
        return self.root / "private"


def check_relative_path(path: str, field_name: str) -> str:
    """Returns `path` normalised to "a/b/c", or raises if it could climb out of its folder."""
    if not path or not path.strip("/"):
        raise invalid_field(field_name, "a path is required")
    if "\x00" in path or "\\" in path:
        raise invalid_field(field_name, f"{path!r} contains a forbidden character")
    pure = PurePosixPath(path)
    if pure.is_absolute() or (len(path) > 1 and path[1] == ":"):
        raise invalid_field(field_name, f"{path!r} is absolute; paths are relative to the folder")
    if ".." in pure.parts:
        raise invalid_field(field_name, f"{path!r} contains '..'")
    return "/".join(part for part in pure.parts if part != ".")


def copy_tree(source: Path, target: Path) -> dict[str, CopiedFile]:
    """Copies every regular file under `source`, hashing as it goes.

    Symlinks are copied as the files they point to, but only when they stay inside `source`:
    a link out of the folder could smuggle any file on the importing machine into the data.
    """
    root = source.resolve()
    copied: dict[str, CopiedFile] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [*sorted(filenames), *(d for d in dirnames if Path(dirpath, d).is_symlink())]:
            entry = Path(dirpath, name)
            relative = entry.relative_to(root).as_posix()
            real = entry.resolve()
            if not real.is_relative_to(root):
                raise InvalidArgumentError(
                    f"{entry} is a symlink to {real}, outside {source}",
                    reason="SYMLINK_ESCAPES",
                    metadata={"file": str(entry)},
                )
            if not stat.S_ISREG(real.stat().st_mode):
                raise InvalidArgumentError(
                    f"{entry} is not a regular file (symlinked folders and devices are refused)",
                    reason="NOT_A_REGULAR_FILE",
                    metadata={"file": str(entry)},
                )
            copied[relative] = _copy_file(real, target / relative, relative)
    return copied


def _copy_file(source: Path, target: Path, relative: str) -> CopiedFile:
    target.parent.mkdir(parents=True, exist_ok=True)
    sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(COPY_CHUNK_BYTES):
            sha256.update(chunk)
            md5.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    return CopiedFile(relative, size, sha256.hexdigest(), md5.hexdigest())


class CompetitionStorage:
    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "competitions"

    def competition_dir(self, competition_id: str) -> Path:
        return self.root / competition_id

    def public_dir(self, competition_id: str) -> Path:
        return self.competition_dir(competition_id) / "public"

    def private_dir(self, competition_id: str) -> Path:
        return self.competition_dir(competition_id) / "private"

    @contextmanager
    def staging(self, public_source: Path, private_source: Path) -> Iterator[StagedData]:
        """Copies both folders into a staging area that vanishes unless installed."""
        # Ids never start with ".", so these folders cannot collide with a competition.
        root = self.root / ".staging" / uuid.uuid4().hex
        root.mkdir(parents=True)
        try:
            public = copy_tree(public_source, root / "public")
            private = copy_tree(private_source, root / "private")
            # Answers are the one secret here: only the registry's user may read them.
            (root / "private").mkdir(exist_ok=True)
            (root / "private").chmod(0o700)
            yield StagedData(root, public, private)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def install(self, competition_id: str, staged: StagedData | None) -> None:
        """Makes staged files the competition's files, or removes them for metadata-only."""
        final = self.competition_dir(competition_id)
        trash = self.root / ".trash" / uuid.uuid4().hex
        if final.exists():
            trash.parent.mkdir(parents=True, exist_ok=True)
            final.rename(trash)
        if staged is not None:
            staged.root.rename(final)
        shutil.rmtree(trash, ignore_errors=True)

    def resolve_public_file(self, competition_id: str, relative: str, field_name: str) -> Path:
        """The file's real path, refusing anything that resolves outside the public folder."""
        base = self.public_dir(competition_id).resolve()
        real = (base / check_relative_path(relative, field_name)).resolve()
        if not real.is_relative_to(base):
            raise invalid_field(field_name, f"{relative!r} leads outside the public data")
        return real
