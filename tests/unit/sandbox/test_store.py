"""The sandbox tables on SQLite and PostgreSQL: migrations, filters, pages, logs, leases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.orm import Session, sessionmaker

from services.common import db
from services.common.errors import InvalidArgumentError, NotFoundError, ResourceExhaustedError
from services.sandbox.db import store
from services.sandbox.db.sandbox_rows import SandboxRows
from services.sandbox.db.schema import Base, SandboxRow
from services.sandbox.gpus import leases
from services.sandbox.lifecycle.states import SandboxState
from services.sandbox.node.public_cache import PublicCache
from services.sandbox.records import LogEntry, LogStream, SandboxFilter

NODE = "node-a"
GPUS = [f"GPU-{i:08d}" for i in range(4)]


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = store.open_database(database_url)
    yield db.create_session_factory(engine)
    engine.dispose()


def make_row(sandbox_id: str, *, minutes_ago: int = 0, **fields) -> SandboxRow:
    values = dict(
        id=sandbox_id, competition_id="comp", image="img", image_digest="", command=[],
        env={}, secret_env_names=[], cpus=1.0, memory_bytes=1, shm_bytes=1, pids_limit=1,
        gpu_count=0, requested_gpu_uuids=[], time_limit_s=60.0, network_mode="none",
        allowed_hosts=[], description_variant="PLAIN", owner="lab", idempotency_key=None,
        wait_for_gpus=False, mlebench_compat=False, backend="local", state="PENDING",
        failure_class="", failure_reason="", failure_message="", exit_code=None,
        created_at=datetime.now(UTC) - timedelta(minutes=minutes_ago), stop_target="",
        stop_reason="", stop_grace_s=0.0, node=NODE, instance_id="i", backend_ref="",
        cpu_seconds=0.0, peak_memory_bytes=0, gpu_utilization_percent=0.0,
        peak_gpu_memory_bytes=0, artifacts_size_bytes=0, submission_collected=False,
        last_log_seq=0, last_output_time=0.0, layout_root="/nowhere",
    )  # fmt: skip
    values.update(fields)
    return SandboxRow(**values)


def add(sessions, row: SandboxRow, labels: dict[str, str] | None = None) -> None:
    with sessions.begin() as session:
        store.insert_sandbox(session, row, labels or {})


def test_migrations_match_the_models(database_url: str):
    engine = store.open_database(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"include_object": lambda o, n, t, r, c: t != "table" or n.startswith("sandbox_")},
        )
        assert compare_metadata(context, Base.metadata) == []
    # Running them again is a no-op.
    store.open_database(database_url).dispose()
    engine.dispose()


def test_label_state_owner_filters_and_stable_pages(sessions):
    for i in range(7):
        labels = {"team": "a" if i % 2 == 0 else "b", "run": str(i)}
        state = "RUNNING" if i < 3 else "PENDING"
        add(
            sessions,
            make_row(f"sbx-{i}", minutes_ago=10 - i, state=state, owner=f"o{i % 3}"),
            labels,
        )

    def ids(where: SandboxFilter, limit: int = 100) -> list[str]:
        with sessions() as session:
            return [r.id for r in store.list_rows(session, where, limit, None)]

    assert ids(SandboxFilter()) == [f"sbx-{i}" for i in reversed(range(7))]  # newest first
    assert ids(SandboxFilter(labels={"team": "a"})) == ["sbx-6", "sbx-4", "sbx-2", "sbx-0"]
    # Every label must match.
    assert ids(SandboxFilter(labels={"team": "a", "run": "4"})) == ["sbx-4"]
    assert ids(SandboxFilter(labels={"team": "a", "run": "3"})) == []
    assert ids(SandboxFilter(states=[SandboxState.RUNNING])) == ["sbx-2", "sbx-1", "sbx-0"]
    assert ids(SandboxFilter(owner="o1", states=[SandboxState.PENDING])) == ["sbx-4"]
    seen: list[str] = []
    where = SandboxFilter(labels={"team": "b"})
    after = None
    while True:
        with sessions() as session:
            rows = store.list_rows(session, where, 2, after)
            if not rows:
                break
            seen += [r.id for r in rows]
            after = store.decode_page_token(store.encode_page_token(rows[-1], where), where)
    assert seen == ["sbx-5", "sbx-3", "sbx-1"]
    token = store.encode_page_token(make_row("sbx-5"), where)
    with pytest.raises(InvalidArgumentError):
        store.decode_page_token(token, SandboxFilter())  # filters changed
    with pytest.raises(InvalidArgumentError):
        store.decode_page_token("not-a-token", where)


def test_conditional_transitions_let_one_writer_win(sessions):
    add(sessions, make_row("sbx-1"))
    with sessions.begin() as session:
        assert store.transition(session, "sbx-1", SandboxState.RUNNING, {})
    with sessions.begin() as session:
        # RUNNING cannot become RUNNING again, nor PENDING-only conditions match.
        assert not store.transition(session, "sbx-1", SandboxState.RUNNING, {})
        assert not store.transition(session, "sbx-1", None, {"stop_reason": "x"},
                                    states=[SandboxState.PENDING])  # fmt: skip
        assert store.transition(session, "sbx-1", SandboxState.CANCELLED, {}, stop_target="")
    with sessions.begin() as session:
        assert not store.transition(session, "sbx-1", SandboxState.FAILED, {})
    with sessions() as session, pytest.raises(NotFoundError):
        store.get_row(session, "sbx-none")


def test_logs_append_in_batches_and_read_in_pages(sessions):
    add(sessions, make_row("sbx-1"))
    entries = [LogEntry(i, 1000.0 + i, LogStream.STDOUT, f"line {i}") for i in range(1, 1201)]
    for start in range(0, 1200, 500):
        with sessions.begin() as session:
            store.append_logs(session, "sbx-1", entries[start : start + 500], entries[-1].time)
    with sessions() as session:
        assert store.get_row(session, "sbx-1").last_log_seq == 1200
        page = store.read_logs(session, "sbx-1", 0, 500, 10**9)
        assert [e.seq for e in page] == list(range(1, 501))
        assert [e.seq for e in store.read_logs(session, "sbx-1", 1150, 500, 10**9)] == list(
            range(1151, 1201)
        )


def test_a_log_page_holds_at_least_one_entry_and_no_more_text_than_asked(sessions):
    add(sessions, make_row("sbx-1"))
    entries = [LogEntry(i, 1000.0 + i, LogStream.STDOUT, "x" * (10 * i)) for i in range(1, 6)]
    with sessions.begin() as session:
        store.append_logs(session, "sbx-1", entries, entries[-1].time)
    with sessions() as session:
        # 10 + 20 + 30 fit in 60 characters; the fourth line would not.
        assert [e.seq for e in store.read_logs(session, "sbx-1", 0, 500, 60)] == [1, 2, 3]
        # A line longer than the bound still comes, alone.
        assert [e.seq for e in store.read_logs(session, "sbx-1", 3, 500, 5)] == [4]
        assert store.read_logs(session, "sbx-1", 5, 500, 60) == []


def test_twenty_racing_lease_transactions_never_share_a_gpu(sessions):
    """Twenty threads, each with its own connection and transaction, race for four GPUs."""
    for i in range(20):
        add(sessions, make_row(f"sbx-{i:02d}"))
    barrier = threading.Barrier(20)
    outcome: dict[str, object] = {}

    def take(sandbox_id: str) -> None:
        barrier.wait()
        for _attempt in range(50):
            try:
                with sessions.begin() as session:
                    chosen = leases.choose(
                        NODE, GPUS, [], set(leases.holders(session, NODE)), count=1, wanted=[]
                    )
                    if chosen is None:
                        raise leases.gpus_busy(NODE, 1, 0)
                    leases.lease(session, NODE, sandbox_id, chosen)
                outcome[sandbox_id] = chosen
                return
            except leases.LeaseConflict:
                continue
            except ResourceExhaustedError as exc:
                outcome[sandbox_id] = exc
                return

    threads = [threading.Thread(target=take, args=(f"sbx-{i:02d}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    granted = {k: v for k, v in outcome.items() if isinstance(v, list)}
    refused = [v for v in outcome.values() if isinstance(v, ResourceExhaustedError)]
    assert len(granted) == 4 and len(refused) == 16
    assert sorted(g for gs in granted.values() for g in gs) == GPUS
    with sessions() as session:
        holders = leases.holders(session, NODE)
    assert holders == {gs[0]: sandbox_id for sandbox_id, gs in granted.items()}
    # Releasing frees exactly that sandbox's GPU.
    released_by = next(iter(granted))
    with sessions.begin() as session:
        assert leases.release(session, released_by) == granted[released_by]
    with sessions() as session:
        assert len(leases.holders(session, NODE)) == 3


def test_choose_refuses_impossible_requests():
    from services.common.errors import FailedPreconditionError

    with pytest.raises(FailedPreconditionError):
        leases.choose(NODE, GPUS, [], set(), count=5, wanted=[])
    with pytest.raises(FailedPreconditionError):
        leases.choose(NODE, GPUS[:3], [GPUS[3]], set(), count=0, wanted=[GPUS[3]])
    with pytest.raises(InvalidArgumentError):
        leases.choose(NODE, GPUS, [], set(), count=0, wanted=["GPU-unknown"])
    assert leases.choose(NODE, GPUS, [], {GPUS[0]}, count=0, wanted=[GPUS[0]]) is None
    assert leases.choose(NODE, GPUS, [], {GPUS[0]}, count=2, wanted=[]) == GPUS[1:3]


def test_cache_pins_follow_the_database_across_a_restart(sessions, tmp_path):
    """The cache asks the database which pinning sandboxes are still active, so an entry
    stays while its sandbox runs and goes once it ended, even if it ended while the
    service was down (nobody removed the pin)."""
    add(sessions, make_row("running", state="RUNNING"))
    add(sessions, make_row("ended", state="SUCCEEDED"))
    add(sessions, make_row("pending"))
    with sessions() as session:
        found = store.active_among(session, ["running", "ended", "pending", "unknown"])
    assert found == {"running", "pending"}
    cache = PublicCache(tmp_path, max_bytes=1, live=SandboxRows(sessions).active_among)
    for competition, sandbox in (("comp-a", "running"), ("comp-b", "ended")):
        with cache.staging(competition) as staging:
            (staging.path / "f").write_bytes(b"x" * 10)
            cache.seal(competition, "k", staging.path, sandbox)
    assert [e.competition_id for e in cache.evict()] == ["comp-b"]
    with sessions.begin() as session:
        assert store.transition(session, "running", SandboxState.SUCCEEDED, {})
    assert [e.competition_id for e in cache.evict()] == ["comp-a"]
