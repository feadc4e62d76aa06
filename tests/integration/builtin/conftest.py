"""Built-in competitions imported into a real registry, with a real grader in front of it."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.builtin.catalog import import_builtins
from services.common.settings import Settings
from services.grader.app import grader_service
from services.registry.app import registry_service
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller


@dataclass(frozen=True)
class BuiltinStack:
    built: Path  # the built folders, <id>/public and <id>/private
    settings: Settings
    grader_addr: str


@pytest.fixture
async def builtin_stack(
    serve, settings: Settings, tmp_path: Path
) -> Callable[[Sequence[str]], Awaitable[BuiltinStack]]:
    async def start(ids: Sequence[str]) -> BuiltinStack:
        built = tmp_path / "built"
        core = RegistryCore.from_settings(settings)
        try:
            report = import_builtins(CompetitionInstaller(core.sessions, core.storage), ids, built)
        finally:
            core.close()
        assert not report.failed, report
        registry = await serve([registry_service(settings)], settings)
        graded = dataclasses.replace(settings, registry_addr=f"127.0.0.1:{registry.port}")
        grader = await serve([grader_service(graded)], graded)
        return BuiltinStack(built, graded, f"127.0.0.1:{grader.port}")

    return start
