"""Every built-in competition, building them all, and importing them into a registry."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.builtin import breast_cancer, chatbot_language, diabetes, digits
from services.builtin.definition import Definition
from services.common.errors import MlebError, NotFoundError
from services.registry.importers.install import (
    CompetitionInstaller,
    ImportReport,
    ImportResult,
    ImportStatus,
)
from services.registry.importers.own_format import import_competition


@dataclass(frozen=True)
class Builtin:
    definition: Definition
    build: Callable[[Path], Path]

    @property
    def id(self) -> str:
        return self.definition.id


BUILTINS: dict[str, Builtin] = {
    module.DEFINITION.id: Builtin(module.DEFINITION, module.build)
    for module in (breast_cancer, diabetes, digits, chatbot_language)
}
# The one `mleb demo` runs its baseline agent on: small and quick to train.
DEMO_COMPETITION = breast_cancer.DEFINITION.id


def selected(ids: Sequence[str] = ()) -> list[Builtin]:
    """The named built-ins (all when none are named), or NOT_FOUND naming the unknown ones."""
    unknown = [i for i in ids if i not in BUILTINS]
    if unknown:
        raise NotFoundError(
            f"no built-in competition {', '.join(map(repr, unknown))}; "
            f"the built-ins are {', '.join(BUILTINS)}",
            reason="BUILTIN_NOT_FOUND",
        )
    return [BUILTINS[i] for i in ids] if ids else list(BUILTINS.values())


def import_builtins(
    installer: CompetitionInstaller, ids: Sequence[str] = (), build_dir: Path | None = None
) -> ImportReport:
    """Builds and imports each built-in; one that fails is reported and the rest go on.

    The folders are built in `build_dir` when given (and kept), else in a temporary folder;
    the registry copies what it imports, so the build can be thrown away.
    """
    chosen = selected(ids)
    with tempfile.TemporaryDirectory(prefix="mleb-builtin-") as scratch:
        root = build_dir or Path(scratch)
        report = ImportReport()
        for builtin in chosen:
            try:
                report.results.append(import_competition(installer, builtin.build(root)))
            except MlebError as exc:
                report.results.append(
                    ImportResult(builtin.id, ImportStatus.FAILED, error=exc.message)
                )
    return report
