"""The sandbox driver's own database calls, each in its own transaction.

They block, so the async code runs them on its worker threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy.orm import Session, sessionmaker

from services.sandbox.db import store
from services.sandbox.db.schema import SandboxRow
from services.sandbox.gpus import leases
from services.sandbox.lifecycle.states import SandboxState
from services.sandbox.node.egress_proxy import EgressSums
from services.sandbox.records import SandboxRecord


class SandboxRows:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, sandbox_id: str) -> SandboxRow:
        with self._sessions() as session:
            return store.get_row(session, sandbox_id)

    def update(
        self,
        sandbox_id: str,
        target: SandboxState | None,
        values: Mapping[str, object],
        *,
        states: Iterable[SandboxState] | None = None,
        **conditions: object,
    ) -> bool:
        with self._sessions.begin() as session:
            return store.transition(
                session, sandbox_id, target, values, states=states, **conditions
            )

    def preview(
        self, sandbox_id: str, target: SandboxState, values: Mapping[str, object]
    ) -> SandboxRecord | None:
        """The record as `update(sandbox_id, target, values)` would leave it, unwritten (None
        if that update would not apply): what the attestation signs is what is then stored."""
        with self._sessions() as session:
            if not store.transition(session, sandbox_id, target, values):
                return None
            record = store.to_record(session, store.get_row(session, sandbox_id))
            session.rollback()
            return record

    def add_egress(self, sandbox_id: str, sums: EgressSums, max_destinations: int) -> None:
        with self._sessions.begin() as session:
            store.add_egress(session, sandbox_id, sums, max_destinations)

    def leased_gpus(self, sandbox_id: str) -> list[str]:
        with self._sessions() as session:
            return store.leases_of(session, [sandbox_id])[sandbox_id]

    def active_among(self, sandbox_ids: Iterable[str]) -> set[str]:
        """The given sandboxes that are still pending or running (they pin public data)."""
        with self._sessions() as session:
            return store.active_among(session, list(sandbox_ids))

    def release_leases(self, sandbox_id: str) -> list[str]:
        with self._sessions.begin() as session:
            return leases.release(session, sandbox_id)
