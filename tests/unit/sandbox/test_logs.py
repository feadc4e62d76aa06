"""Log writing and reading: gapless numbering, batching, resume, follow, slow readers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from services.common import db
from services.sandbox.db import store
from services.sandbox.lifecycle.logs import (
    BATCH_CHARS,
    MAX_LINE_CHARS,
    READ_PAGE_CHARS,
    READ_PAGE_ENTRIES,
    LogReader,
    LogSignals,
    LogWriter,
    Redactor,
)
from services.sandbox.lifecycle.states import SandboxState
from services.sandbox.lifecycle.threads import WorkerThreads
from services.sandbox.records import LogStream
from tests.unit.sandbox.test_store import add, make_row

THREADS = WorkerThreads(2)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = store.open_database(database_url)
    factory = db.create_session_factory(engine)
    add(factory, make_row("sbx-1", state="RUNNING"))
    yield factory
    engine.dispose()


def writer_for(sessions, signals, last_seq=0, secrets=()) -> LogWriter:
    return LogWriter(
        sessions, signals, THREADS, "sbx-1", last_seq=last_seq, redact=Redactor(secrets),
        batch_lines=100, flush_interval_s=0.05,
    )  # fmt: skip


def finish(sessions) -> None:
    with sessions.begin() as session:
        assert store.transition(session, "sbx-1", SandboxState.SUCCEEDED, {})


async def read_all(reader: LogReader, after: int = 0, follow: bool = False) -> list:
    return [e async for page in reader.stream("sbx-1", after, follow) for e in page]


async def test_numbers_continue_without_gaps_across_writers(sessions):
    signals = LogSignals()
    first = writer_for(sessions, signals)
    for i in range(250):
        first.add(LogStream.STDOUT, f"a{i}", at=1000.0 + i)
    await first.system("lifecycle")
    await first.close()
    # A restarted service continues from the stored last_log_seq.
    with sessions() as session:
        last = store.get_row(session, "sbx-1").last_log_seq
        assert last == 251
        assert store.get_row(session, "sbx-1").last_output_time == 1249.0
    second = writer_for(sessions, signals, last_seq=last)
    second.add(LogStream.STDERR, "b")
    await second.close()
    entries = await read_all(LogReader(sessions, signals, THREADS))
    assert [e.seq for e in entries] == list(range(1, 253))
    assert entries[250].stream is LogStream.SYSTEM and entries[251].stream is LogStream.STDERR


async def test_resume_is_exclusive_and_follow_ends_after_terminal(sessions):
    signals = LogSignals()
    writer = writer_for(sessions, signals)
    reader = LogReader(sessions, signals, THREADS)

    async def produce() -> None:
        for i in range(600):
            writer.add(LogStream.STDOUT, f"line {i}")
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        await writer.close()
        finish(sessions)
        signals.notify("sbx-1")

    producer = asyncio.create_task(produce())
    got: list = []
    # Cut the stream after the first page, then resume after the last seq received.
    async for page in reader.stream("sbx-1", 0, follow=True):
        got += page
        break
    got += await asyncio.wait_for(read_all(reader, got[-1].seq, follow=True), 20)
    await producer
    assert [e.seq for e in got] == list(range(1, 601))
    assert [e.text for e in got] == [f"line {i}" for i in range(600)]


async def test_a_slow_reader_never_holds_the_writer_back(sessions):
    signals = LogSignals()
    writer = writer_for(sessions, signals)
    reader = LogReader(sessions, signals, THREADS)
    for i in range(10):
        writer.add(LogStream.STDOUT, f"early {i}")
    await writer.flush()
    stalled = reader.stream("sbx-1", 0, follow=True)
    first = await anext(stalled)  # the reader takes one page, then stops reading
    assert len(first) == 10
    for i in range(5000):
        writer.add(LogStream.STDOUT, f"late {i}")
        if writer.full:
            await asyncio.wait_for(writer.flush(), 10)
    await writer.close()
    finish(sessions)
    # The stalled reader holds at most a page at a time, and still gets everything later.
    rest = [page async for page in stalled]
    assert max(len(page) for page in rest) <= READ_PAGE_ENTRIES
    assert [e.seq for page in rest for e in page] == list(range(11, 5011))


async def test_a_batch_of_long_lines_is_full_before_its_line_count(sessions):
    """The capture flushes a full batch: long lines fill it by their text, so a sandbox's
    unflushed lines stay near BATCH_CHARS however long each is."""
    writer = writer_for(sessions, LogSignals())  # 100 lines a batch
    added = 0
    while not writer.full:
        writer.add(LogStream.STDOUT, "y" * MAX_LINE_CHARS)
        added += 1
    assert added == -(-BATCH_CHARS // MAX_LINE_CHARS) < 100
    await writer.flush()
    assert not writer.full
    await writer.close()


async def test_pages_of_the_longest_lines_stay_small(sessions):
    """500 lines of MAX_LINE_CHARS four-byte characters would be a 32 MiB page, over the
    16 MiB message cap: pages are bounded by their text too, and nothing is lost."""
    signals = LogSignals()
    writer = writer_for(sessions, signals)
    line = "\N{MUSICAL SYMBOL G CLEF}" * MAX_LINE_CHARS
    for _ in range(300):
        writer.add(LogStream.STDOUT, line)
        if writer.full:
            await writer.flush()
    writer.add(LogStream.STDOUT, "last")
    await writer.close()
    finish(sessions)
    pages = [page async for page in LogReader(sessions, signals, THREADS).stream("sbx-1", 0, True)]
    assert all(sum(len(e.text) for e in page) <= READ_PAGE_CHARS for page in pages)
    assert [e.seq for page in pages for e in page] == list(range(1, 302))
    assert pages[-1][-1].text == "last" and pages[0][0].text == line


async def test_secrets_are_redacted_and_huge_lines_are_cut(sessions):
    signals = LogSignals()
    writer = writer_for(sessions, signals, secrets=["hunter2-secret", "ab"])
    writer.add(LogStream.STDOUT, "token=hunter2-secret and ab stays")
    writer.add(LogStream.STDOUT, "x" * (MAX_LINE_CHARS * 3))
    await writer.close()
    entries = await read_all(LogReader(sessions, signals, THREADS))
    # Too-short values are not redacted: they would blank out ordinary text.
    assert entries[0].text == "token=[REDACTED] and ab stays"
    assert len(entries[1].text) < MAX_LINE_CHARS + 100 and "cut" in entries[1].text


async def test_reading_an_unknown_sandbox_is_not_found(sessions):
    from services.common.errors import NotFoundError

    with pytest.raises(NotFoundError):
        await anext(LogReader(sessions, LogSignals(), THREADS).stream("sbx-none", 0, False))
