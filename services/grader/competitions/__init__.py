"""Per-competition grading specs, one module per competition, each exposing `SPEC`."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from services.grader.competitions.base import CompetitionSpec

_NOT_SPECS = {"base", "checks", "id_order"}


@cache
def all_specs() -> dict[str, CompetitionSpec]:
    specs: dict[str, CompetitionSpec] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_SPECS or info.name.startswith("_"):
            continue
        spec = importlib.import_module(f"{__name__}.{info.name}").SPEC
        if spec.id in specs:
            raise RuntimeError(f"two grading specs claim competition {spec.id!r}")
        specs[spec.id] = spec
    return specs


def get_spec(competition_id: str) -> CompetitionSpec | None:
    return all_specs().get(competition_id)
