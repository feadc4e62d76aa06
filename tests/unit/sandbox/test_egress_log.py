"""The egress log in the sandbox record: summed per destination and verdict, capped, durable,
and the migration that brings an existing database to tenancy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.common import db
from services.sandbox.db import store
from services.sandbox.node.egress_log import EgressLog
from services.sandbox.node.egress_proxy import EgressEvent, EgressVerdict
from tests.unit.sandbox.test_store import add, make_row


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = store.open_database(database_url)
    yield db.create_session_factory(engine)
    engine.dispose()


def event(host: str, verdict=EgressVerdict.ALLOWED, sent=0, received=0, at=1000.0, port=443):
    address = "203.0.113.9" if verdict is EgressVerdict.ALLOWED else ""
    return EgressEvent(host, port, address, verdict, sent, received, at, at + 1)


def record(sessions, sandbox_id: str):
    with sessions() as session:
        return store.to_record(session, store.get_row(session, sandbox_id))


async def test_events_are_summed_per_destination_and_capped(sessions):
    add(sessions, make_row("sbx-e"))
    log = EgressLog(sessions, max_destinations=3, flush_interval_s=0.05)
    log.record("sbx-e", event("api.example.org", sent=10, received=100, at=1000))
    log.record("sbx-e", event("api.example.org", sent=5, received=50, at=2000))
    log.record("sbx-e", event("evil.example", EgressVerdict.NOT_ALLOWLISTED))
    await log.flush("sbx-e")
    log.record("sbx-e", event("api.example.org", sent=1, received=1, at=3000))
    for n in range(5):  # an agent inventing names: past the cap they are only counted
        log.record("sbx-e", event(f"n{n}.example", EgressVerdict.NOT_ALLOWLISTED))
    await log.aclose()

    got = record(sessions, "sbx-e")
    assert [(d.host, d.verdict, d.connections) for d in got.egress] == [
        ("api.example.org", EgressVerdict.ALLOWED, 3),
        ("evil.example", EgressVerdict.NOT_ALLOWLISTED, 1),
        ("n0.example", EgressVerdict.NOT_ALLOWLISTED, 1),
    ]
    api = got.egress[0]
    assert (api.bytes_sent, api.bytes_received, api.address) == (16, 151, "203.0.113.9")
    assert api.first_at == datetime.fromtimestamp(1000, UTC)
    assert api.last_at == datetime.fromtimestamp(3001, UTC)
    assert got.egress_omitted_connections == 4


async def test_a_batch_is_written_without_waiting_for_close(sessions):
    add(sessions, make_row("sbx-f"))
    log = EgressLog(sessions, flush_interval_s=0.05)
    log.record("sbx-f", event("api.example.org", sent=1, at=time.time()))
    deadline = time.monotonic() + 10
    while not record(sessions, "sbx-f").egress:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await log.aclose()


def test_the_migration_gives_older_sandboxes_their_owner_as_tenant(database_url: str):
    engine = db.create_db_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(store.MIGRATIONS_DIR))
    config.attributes["version_table"] = store.VERSION_TABLE
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        table = sa.Table("sandbox_sandboxes", sa.MetaData(), autoload_with=connection)
        row = {c: v for c, v in vars(make_row("sbx-old", owner="lab-a")).items() if c in table.c}
        connection.execute(table.insert(), [{**row, "idempotency_key": "k"}])
    engine.dispose()

    engine = store.open_database(database_url)  # upgrades to head
    sessions = db.create_session_factory(engine)
    try:
        assert record(sessions, "sbx-old").tenant == "lab-a"
        # Keys are per tenant now: another tenant may reuse one, the same tenant may not.
        add(sessions, make_row("sbx-new", tenant="lab-b", idempotency_key="k"))
        with pytest.raises(IntegrityError):
            add(sessions, make_row("sbx-dup", tenant="lab-a", idempotency_key="k"))
        with sessions() as session:
            assert store.find_by_idempotency_key(session, "k", "lab-b").id == "sbx-new"
    finally:
        engine.dispose()
