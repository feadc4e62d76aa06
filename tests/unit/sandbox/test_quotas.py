"""The disk quota's measure of the output folders, and the log budget."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from services.common import db
from services.sandbox.db import store
from services.sandbox.lifecycle import quotas
from services.sandbox.lifecycle.logs import (
    LINE_OVERHEAD_BYTES,
    MAX_LINE_CHARS,
    LogBudget,
    LogReader,
    LogSignals,
    LogWriter,
    Redactor,
)
from services.sandbox.lifecycle.threads import WorkerThreads
from services.sandbox.node.layout import host_layout
from services.sandbox.records import LogStream
from tests.unit.sandbox.test_store import add, make_row

THREADS = WorkerThreads(2)


def _outputs(tmp_path: Path):
    layout = host_layout(tmp_path / "sbx")
    for folder in (layout.submission_dir, layout.logs_dir, layout.code_dir):
        folder.mkdir(parents=True)
    return layout


def test_sparse_files_count_at_their_apparent_size(tmp_path):
    layout = _outputs(tmp_path)
    with open(layout.code_dir / "sparse", "wb") as handle:
        handle.truncate(3 * 1024**3)
    (layout.logs_dir / "real").write_bytes(b"x" * 10_000)
    measured = quotas.outputs_size(layout)
    assert measured.bytes >= 3 * 1024**3 + 10_000
    assert measured.entries == 2
    assert quotas.exceeded(measured, 0, 1024**3, 0) is not None
    assert quotas.exceeded(measured, 0, 4 * 1024**3, 0) is None


def test_links_are_counted_never_followed(tmp_path):
    layout = _outputs(tmp_path)
    big = tmp_path / "outside"
    big.mkdir()
    (big / "huge").write_bytes(b"x" * 1_000_000)
    os.symlink(big, layout.submission_dir / "dir-link")
    os.symlink(big / "huge", layout.logs_dir / "file-link")
    measured = quotas.outputs_size(layout)
    assert measured.bytes < 10_000 and measured.entries == 2
    # A whole output folder swapped for a link counts as nothing of the agent's.
    os.rmdir(layout.code_dir)
    os.symlink(big, layout.code_dir)
    assert quotas.outputs_size(layout).bytes < 10_000


def test_too_many_entries_is_over_quota(tmp_path):
    layout = _outputs(tmp_path)
    for i in range(50):
        (layout.code_dir / f"f{i}").touch()
    measured = quotas.outputs_size(layout, stop_after_entries=10)
    assert 10 < measured.entries <= 12
    assert "more than 10 files" in quotas.exceeded(measured, 0, 1024**3, 10)


def test_the_writable_layer_counts_with_the_outputs(tmp_path):
    layout = _outputs(tmp_path)
    (layout.submission_dir / "a").write_bytes(b"x" * 600)
    why = quotas.exceeded(quotas.outputs_size(layout), 500, 1000, 0)
    assert why is not None and "500 elsewhere" in why


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = store.open_database(database_url)
    factory = db.create_session_factory(engine)
    add(factory, make_row("sbx-1", state="RUNNING"))
    yield factory
    engine.dispose()


def _writer(sessions, signals, budget: int, row=None) -> LogWriter:
    return LogWriter(
        sessions, signals, THREADS, "sbx-1", redact=Redactor(), flush_interval_s=0.02,
        last_seq=row.last_log_seq if row else 0,
        budget=LogBudget(
            budget, row.agent_log_bytes if row else 0, row.log_lines_dropped if row else 0
        ),
    )  # fmt: skip


async def test_the_log_budget_drops_agent_lines_after_one_marker(sessions):
    signals = LogSignals()
    line = "y" * 100
    cost = len(line) + LINE_OVERHEAD_BYTES
    writer = _writer(sessions, signals, budget=10 * cost)
    await writer.system("starting")
    for i in range(100):
        writer.add(LogStream.STDOUT if i % 2 else LogStream.STDERR, line, at=1000.0 + i)
    await writer.system("still here")
    await writer.close()
    with sessions() as session:
        row = store.get_row(session, "sbx-1")
    assert (row.agent_log_bytes, row.log_lines_dropped) == (10 * cost, 90)
    # Dropped lines still move the resume point, so a restart does not read them again.
    assert row.last_output_time == 1099.0
    # A restarted writer goes on dropping, without a second marker.
    again = _writer(sessions, signals, budget=10 * cost, row=row)
    again.add(LogStream.STDOUT, "after restart", at=2000.0)
    await again.system("finished")
    await again.close()
    await asyncio.sleep(0.05)
    entries = [e async for page in LogReader(sessions, signals, THREADS).stream("sbx-1", 0, False)
               for e in page]  # fmt: skip
    texts = [e.text for e in entries]
    assert texts[0] == "starting" and texts[-2:] == ["still here", "finished"]
    assert sum(e.stream is not LogStream.SYSTEM for e in entries) == 10
    markers = [t for t in texts if t.startswith("agent output truncated")]
    assert len(markers) == 1
    with sessions() as session:
        assert store.get_row(session, "sbx-1").log_lines_dropped == 91


async def test_system_lines_never_count_against_the_budget(sessions):
    signals = LogSignals()
    writer = _writer(sessions, signals, budget=LINE_OVERHEAD_BYTES + 1)
    for i in range(1000):
        await writer.system(f"lifecycle {i}")
    writer.add(LogStream.STDOUT, "x")
    await writer.close()
    with sessions() as session:
        row = store.get_row(session, "sbx-1")
    assert (row.agent_log_bytes, row.log_lines_dropped, row.last_log_seq) == (
        LINE_OVERHEAD_BYTES + 1,
        0,
        1001,
    )


async def test_lifecycle_lines_are_never_cut(sessions):
    signals = LogSignals()
    writer = _writer(sessions, signals, budget=1024)
    await writer.system("s" * (MAX_LINE_CHARS * 2))
    writer.add(LogStream.STDOUT, "a" * (MAX_LINE_CHARS * 2))
    await writer.close()
    entries = [e async for page in LogReader(sessions, signals, THREADS).stream("sbx-1", 0, False)
               for e in page]  # fmt: skip
    assert len(entries[0].text) == MAX_LINE_CHARS * 2
    # The cut agent line is still more than the budget: dropped after the marker.
    assert entries[1].text.startswith("agent output truncated") and len(entries) == 2
