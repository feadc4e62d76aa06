"""A finished sandbox's outputs archive, built once and kept in the object store, so that any
sandbox service instance sharing the database and the store serves the same bytes.

Without a store (MLEB_OBJECT_STORE unset) every archive is built from the host folder on
demand, as on a single machine. With one, the archive built for the attestation at the end is
the one stored, under `sandboxes/<id>/artifacts.tar`, with the sha256 and size the store
records; DownloadArtifacts of a finished sandbox streams it from there, verified. A running
sandbox's outputs are still built on demand, by the node that holds them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import DataLossError, FailedPreconditionError, NotFoundError
from services.sandbox.node import artifacts
from services.sandbox.records import SandboxRecord
from services.storage.base import ObjectStore, StoredObject


def artifacts_key(sandbox_id: str) -> str:
    return f"sandboxes/{sandbox_id}/artifacts.tar"


@dataclass(frozen=True)
class StoredArchive:
    """A stored archive, served as an artifacts.Archive is: size, sha256, chunks, remove."""

    stored: StoredObject

    @property
    def size_bytes(self) -> int:
        return self.stored.info.size_bytes

    @property
    def sha256(self) -> str:
        return self.stored.info.sha256

    def chunks(self) -> Iterator[bytes]:
        return self.stored.chunks()

    def remove(self) -> None:
        self.stored.close()


Servable = artifacts.Archive | StoredArchive


class ArchiveSource:
    def __init__(self, store: ObjectStore | None, scratch_dir: Path, max_bytes: int) -> None:
        self._store = store
        self._scratch_dir = scratch_dir
        self._max_bytes = max_bytes
        self._slots = artifacts.BuildSlots()

    def build(self, record: SandboxRecord) -> artifacts.Archive:
        """The archive of the host folder now, in a scratch file the caller removes."""
        return artifacts.build_archive(
            record.id, Path(record.layout_root), self._scratch_dir, self._max_bytes, self._slots
        )

    def for_attestation(self, record: SandboxRecord) -> artifacts.Archive:
        """The archive the attestation names: with a store, the one stored."""
        return self._seal(record) if self._store else self.build(record)

    def _seal(self, record: SandboxRecord) -> artifacts.Archive:
        assert self._store is not None
        archive = self.build(record)
        try:
            info = self._store.put_file(artifacts_key(record.id), archive.path)
        finally:
            archive.remove()
        if info.sha256 != archive.sha256:
            raise DataLossError(
                f"the artifacts of sandbox {record.id} changed while being stored",
                reason="ARTIFACTS_CHANGED",
            )
        return artifacts.Archive(archive.path, info.size_bytes, info.sha256)

    def serve(self, record: SandboxRecord) -> Servable:
        """What DownloadArtifacts streams; the caller calls remove() once done."""
        if self._store is None:
            return self._build_here(record)
        here = Path(record.layout_root).is_dir()
        if not record.state.terminal:
            if not here:
                raise FailedPreconditionError(
                    f"sandbox {record.id} runs on another node: its artifacts can be downloaded "
                    "here once it has finished",
                    reason="ARTIFACTS_ON_ANOTHER_NODE",
                    metadata={"sandbox_id": record.id},
                )
            return self._build_here(record)
        key = artifacts_key(record.id)
        try:
            return StoredArchive(self._store.open(key))
        except NotFoundError:
            # Finished before the store was configured, or its attestation never ran: this
            # node builds and stores it, if the host folder is here.
            if not here:
                raise FailedPreconditionError(
                    f"the artifacts of sandbox {record.id} are not in the object store",
                    reason="ARTIFACTS_NOT_STORED",
                    metadata={"sandbox_id": record.id},
                ) from None
        self._seal(record)
        return StoredArchive(self._store.open(key))

    def _build_here(self, record: SandboxRecord) -> artifacts.Archive:
        """build(), where a host folder that is gone (removed by hand, or on a node that
        shares the database without the folder) is a clear refusal, not a crash."""
        try:
            return self.build(record)
        except FileNotFoundError:
            if Path(record.layout_root).is_dir():
                raise  # something else is missing: the scratch folder, a server fault
            raise FailedPreconditionError(
                f"the artifacts of sandbox {record.id} are not on this node and no object "
                "store holds them",
                reason="ARTIFACTS_GONE",
                metadata={"sandbox_id": record.id},
            ) from None

    def forget(self, sandbox_ids: list[str]) -> None:
        """Retention: the stored archives of sandboxes whose artifacts were deleted."""
        if self._store is not None:
            forget_archives(self._store, sandbox_ids)


def forget_archives(store: ObjectStore, sandbox_ids: list[str]) -> None:
    for sandbox_id in sandbox_ids:
        store.delete(artifacts_key(sandbox_id))
