"""A registry core on a fresh database (SQLite and PostgreSQL) and data dir per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common import db
from services.registry.core import RegistryCore, open_database
from services.registry.importers.install import CompetitionInstaller
from services.registry.storage import CompetitionStorage


@dataclass
class Registry:
    core: RegistryCore
    installer: CompetitionInstaller
    data_dir: Path


@pytest.fixture
def registry(database_url: str, tmp_path: Path) -> Iterator[Registry]:
    engine = open_database(database_url)
    storage = CompetitionStorage(tmp_path / "registry-data")
    core = RegistryCore(db.create_session_factory(engine), storage, chunk_bytes=4096, engine=engine)
    yield Registry(core, CompetitionInstaller(core.sessions, storage), storage.root.parent)
    core.close()
