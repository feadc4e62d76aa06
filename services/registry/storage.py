"""The registry's files on disk: <data_dir>/competitions/<id>/{public,private}/...

The registry copies data in at import, so it is the one holder of private answers, and every
path a request names is checked to stay inside the competition's public folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from services.common.errors import invalid_field
from services.registry.importers.beneath import CopiedFile, copy_tree_beneath


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
    def staging(
        self, base: Path, public: str = "public", private: str = "private"
    ) -> Iterator[StagedData]:
        """Copies base/public and base/private into a staging area that vanishes unless
        installed. No link below `base` is followed (see importers.beneath)."""
        # Ids never start with ".", so these folders cannot collide with a competition.
        root = self.root / ".staging" / uuid.uuid4().hex
        root.mkdir(parents=True)
        try:
            public_files = copy_tree_beneath(base, public, root / "public")
            private_files = copy_tree_beneath(base, private, root / "private")
            # Answers are the one secret here: only the registry's user may read them.
            (root / "private").mkdir(exist_ok=True)
            (root / "private").chmod(0o700)
            yield StagedData(root, public_files, private_files)
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
        return self.resolve_public_files(competition_id, [relative], field_name)[0]

    def resolve_public_files(
        self, competition_id: str, relatives: list[str], field_name: str
    ) -> list[Path]:
        """resolve_public_file for many files at a cost of one lstat each: a folder is
        resolved once however many files it holds, and only a link is resolved in full."""
        base = self.public_dir(competition_id).resolve()
        folders: dict[str, Path] = {}
        found = []
        for relative in relatives:
            clean = check_relative_path(relative, field_name)
            parent, _, name = clean.rpartition("/")
            if parent not in folders:
                folders[parent] = (base / parent).resolve()
            real = folders[parent] / name
            if not real.is_relative_to(base) or os.path.islink(real):
                real = real.resolve()
            if not real.is_relative_to(base):
                raise invalid_field(field_name, f"{relative!r} leads outside the public data")
            found.append(real)
        return found
