"""Database plumbing shared by the services that keep state (registry, sandbox).

Each service owns its tables, its Alembic migration folder and its own Alembic version table,
so several services can share one database without stepping on each other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from services.common.errors import InvalidArgumentError, invalid_field


def check_fits(model: Any, values: dict[str, Any], where: str) -> None:
    """Refuses text that would not fit its column, before the database sees it: PostgreSQL
    raises on an over-long VARCHAR or on a NUL in text, where SQLite stores both."""
    for column in model.__table__.columns:
        value = values.get(column.key)
        if not isinstance(value, str):
            continue
        length = getattr(column.type, "length", None)
        if length is not None and len(value) > length:
            raise invalid_field(f"{where}.{column.key}", f"longer than {length} characters")
        if "\x00" in value:
            raise invalid_field(f"{where}.{column.key}", "contains a NUL character")


def lock_for_transaction(session: Session, name: str) -> None:
    """Holds a lock named `name` until the session's transaction ends, so writers of the same
    thing take turns. PostgreSQL: a transaction-scoped advisory lock (concurrent replaces of
    one row otherwise end in a deadlock or a unique violation). SQLite serialises writers on
    its own."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


# How long SQLite waits for another writer before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Accepts plain postgresql:// URLs and routes them to the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError with an unhelpful message
        raise InvalidArgumentError(f"malformed database URL: {url!r}") from exc
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise InvalidArgumentError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
        )
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers proceed while one writer commits; foreign keys are off by default.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def create_db_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True)


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: cores hand plain values back to servicers.
    return sessionmaker(engine, expire_on_commit=False)


def run_migrations(engine: Engine, migrations_dir: Path, version_table: str) -> None:
    """Upgrades one service's tables to the newest revision in `migrations_dir`."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["version_table"] = version_table
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together must not race on the same DDL.
            lock_id = int.from_bytes(hashlib.sha256(version_table.encode()).digest()[:8], "big")
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id - (1 << 63)}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def run_migration_env(context: Any, target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py (online mode only).

    Only this service's tables are compared during autogenerate, so another service's tables
    in the same database are never proposed for dropping.
    """
    connection = context.config.attributes["connection"]
    version_table = context.config.attributes["version_table"]

    def include_object(obj: Any, name: str, type_: str, reflected: bool, _compare: Any) -> bool:
        if type_ == "table":
            return name in target_metadata.tables
        return True

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
