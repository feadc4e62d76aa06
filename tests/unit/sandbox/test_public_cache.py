"""The node's public-data cache: pins, least-recently-used eviction by size, and the race
between a sandbox taking an entry and eviction removing it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

from services.sandbox.node.public_cache import PublicCache


class Active:
    """Stands in for the database: the sandboxes that are pending or running."""

    def __init__(self, *ids: str) -> None:
        self.ids = set(ids)

    def __call__(self, ids) -> set[str]:
        return self.ids & set(ids)


def add_entry(cache: PublicCache, competition: str, key: str, sandbox: str, size: int) -> Path:
    with cache.staging(competition) as staging:
        (staging.path / "data.bin").write_bytes(b"x" * size)
        return cache.seal(competition, key, staging.path, sandbox)


def age(cache: PublicCache, competition: str, key: str, seconds_ago: float) -> None:
    moment = time.time() - seconds_ago
    os.utime(cache.root / ".state" / competition / key / "size", (moment, moment))


def test_least_recently_used_unpinned_entries_go_first(tmp_path: Path) -> None:
    active = Active("s-new")
    cache = PublicCache(tmp_path, max_bytes=250, live=active)
    old = add_entry(cache, "comp-a", "k1", "s-old", 100)
    middle = add_entry(cache, "comp-b", "k1", "s-mid", 100)
    new = add_entry(cache, "comp-c", "k1", "s-new", 100)
    age(cache, "comp-a", "k1", 300)
    age(cache, "comp-b", "k1", 200)
    evicted = cache.evict()
    assert [(e.competition_id, e.size_bytes) for e in evicted] == [("comp-a", 100)]
    assert not old.exists() and middle.is_dir() and new.is_dir()
    # The ended sandboxes' pins went with the check; the running one's stays.
    assert {e.competition_id: e.pinned_by for e in cache.entries()} == {
        "comp-b": frozenset(),
        "comp-c": frozenset({"s-new"}),
    }
    assert not any((tmp_path / ".trash").iterdir())


def test_entries_in_use_are_kept_even_over_the_limit(tmp_path: Path) -> None:
    active = Active("s1", "s2")
    cache = PublicCache(tmp_path, max_bytes=10, live=active)
    first = add_entry(cache, "comp-a", "k1", "s1", 100)
    second = add_entry(cache, "comp-b", "k1", "s2", 100)
    assert cache.evict() == []
    assert first.is_dir() and second.is_dir()
    # Once s1 ends, its entry is the one to go.
    active.ids.discard("s1")
    assert [e.competition_id for e in cache.evict()] == ["comp-a"]
    assert second.is_dir()


def test_pins_survive_a_restart(tmp_path: Path) -> None:
    entry = add_entry(PublicCache(tmp_path, live=Active("s1")), "comp-a", "k1", "s1", 100)
    # A new service process on the same node: the pin is on disk, the database says s1 runs.
    restarted = PublicCache(tmp_path, max_bytes=1, live=Active("s1"))
    assert restarted.evict() == [] and entry.is_dir()
    assert PublicCache(tmp_path, max_bytes=1, live=Active()).evict()
    assert not entry.exists()


def test_no_limit_never_evicts(tmp_path: Path) -> None:
    cache = PublicCache(tmp_path, max_bytes=0, live=Active())
    entry = add_entry(cache, "comp-a", "k1", "s1", 100)
    assert cache.evict() == [] and entry.is_dir()


def test_pin_answers_whether_the_entry_exists(tmp_path: Path) -> None:
    cache = PublicCache(tmp_path, live=Active("s1", "s2"))
    assert not cache.pin("comp-a", "k1", "s1")
    add_entry(cache, "comp-a", "k1", "s1", 10)
    assert cache.pin("comp-a", "k1", "s2")
    assert cache.entries()[0].pinned_by == {"s1", "s2"}


def test_sizes_of_entries_made_before_sizes_were_kept_are_measured(tmp_path: Path) -> None:
    legacy = tmp_path / "comp-a" / "oldkey"
    legacy.mkdir(parents=True)
    (legacy / "f").write_bytes(b"y" * 50)
    cache = PublicCache(tmp_path, max_bytes=10, live=Active())
    assert [(e.key, e.size_bytes) for e in cache.evict()] == [("oldkey", 50)]


def test_concurrent_starts_and_evictions_never_lose_an_entry_in_use(tmp_path: Path) -> None:
    """Starts pin (or fetch and seal) one entry while another thread evicts with a limit
    every entry exceeds: whenever a start holds the entry, its data is all there."""
    active = Active()
    cache = PublicCache(tmp_path, max_bytes=1, live=active)
    failures: list[str] = []
    stop = threading.Event()

    def start(index: int) -> None:
        sandbox = f"s{index}"
        active.ids.add(sandbox)
        if not cache.pin("comp-a", "k1", sandbox):
            with cache.staging("comp-a") as staging:
                (staging.path / "data.bin").write_bytes(b"z" * 4096)
                cache.seal("comp-a", "k1", staging.path, sandbox)
        entry = cache.entry("comp-a", "k1")
        for _ in range(5):
            try:
                assert (entry / "data.bin").read_bytes() == b"z" * 4096
            except (OSError, AssertionError) as exc:
                failures.append(f"{sandbox}: {exc!r}")
        active.ids.discard(sandbox)  # the sandbox ends

    def evict() -> None:
        while not stop.is_set():
            try:
                cache.evict()
            except OSError as exc:
                failures.append(f"evict: {exc!r}")

    evictors = [threading.Thread(target=evict) for _ in range(2)]
    for thread in evictors:
        thread.start()
    try:
        for round_ in range(40):
            starters = [threading.Thread(target=start, args=(round_ * 3 + i,)) for i in range(3)]
            for thread in starters:
                thread.start()
            for thread in starters:
                thread.join()
    finally:
        stop.set()
        for thread in evictors:
            thread.join()
    assert failures == []
    # Nothing runs any more: the entry is evicted.
    cache.evict()
    assert not cache.entry("comp-a", "k1").exists()


def _fetch_then_die(root: Path, ready) -> None:
    """A fetch in another process that is killed midway: its folder and lock file stay."""
    staging = PublicCache(root).staging("comp-a")
    (staging.path / "part.bin").write_bytes(b"p" * 1000)
    (staging.path.with_name(staging.path.name + ".publish-x")).mkdir()
    ready.set()
    time.sleep(60)


def test_a_crashed_fetch_is_swept_and_a_live_one_is_not(tmp_path: Path) -> None:
    cache = PublicCache(tmp_path, live=Active())
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_fetch_then_die, args=(tmp_path, ready))
    child.start()
    try:
        assert ready.wait(30)
        # Alive in the other process, and alive in this one: both kept.
        with cache.staging("comp-a") as live:
            (live.path / "part.bin").write_bytes(b"q")
            assert cache.evict() == []
            names = {p.name for p in (tmp_path / "comp-a").iterdir()}
            assert len([n for n in names if n.endswith(".lock")]) == 2
            assert any(n.endswith(".publish-x") for n in names)
            os.kill(child.pid, signal.SIGKILL)
            child.join(30)
            cache.evict()
            # The dead fetch's folder, scratch and lock are gone; the live one is whole.
            left = sorted(p.name for p in (tmp_path / "comp-a").iterdir())
            assert left == sorted([live.path.name, live.path.name + ".lock"])
            assert (live.path / "part.bin").read_bytes() == b"q"
        assert list((tmp_path / "comp-a").iterdir()) == []
        assert list((tmp_path / ".trash").iterdir()) == []
    finally:
        if child.is_alive():
            child.kill()


def test_what_a_crash_left_in_the_trash_is_swept(tmp_path: Path) -> None:
    cache = PublicCache(tmp_path, live=Active())
    half_deleted = tmp_path / ".trash" / "tmpcrash" / "comp-a.k1"
    half_deleted.mkdir(parents=True)
    (half_deleted / "data.bin").write_bytes(b"x" * 100)
    assert cache.evict() == []
    assert list((tmp_path / ".trash").iterdir()) == []


def test_a_sealed_fetch_leaves_no_lock_or_folder_behind(tmp_path: Path) -> None:
    cache = PublicCache(tmp_path, live=Active("s1"))
    entry = add_entry(cache, "comp-a", "k1", "s1", 10)
    assert [p.name for p in (tmp_path / "comp-a").iterdir()] == ["k1"]
    assert (entry / "data.bin").read_bytes() == b"x" * 10


def test_the_sweep_follows_no_link_it_finds(tmp_path: Path) -> None:
    """Links planted where the sweep looks (a lock, a staging folder, the trash) are not
    followed: what they point at survives."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    root = tmp_path / "cache"
    (root / "comp-a").mkdir(parents=True)
    (root / ".trash").mkdir()
    (root / "comp-a" / ".download-evil.lock").symlink_to(outside / "keep.txt")
    (root / "comp-a" / ".download-evil").symlink_to(outside)
    (root / "comp-a" / ".download-dead.lock").touch()  # abandoned: nobody holds it
    (root / "comp-a" / ".download-dead").symlink_to(outside)
    (root / ".trash" / "linked").symlink_to(outside)
    PublicCache(root, live=Active()).evict()
    assert (outside / "keep.txt").read_text() == "keep"
    assert not (root / "comp-a" / ".download-dead.lock").exists()
