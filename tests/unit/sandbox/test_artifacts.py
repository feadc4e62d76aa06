"""Archiving agent-written folders safely, with a size cap, and removing them."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from services.common.errors import ResourceExhaustedError
from services.sandbox.node.artifacts import (
    MAX_DEPTH,
    BuildSlots,
    build_archive,
    has_submission,
    outputs_size,
    remove_tree,
)
from tests.fixtures.races import exchange_forever


def outputs(root: Path) -> Path:
    for name in ("submission", "logs", "code"):
        (root / name).mkdir(parents=True)
    (root / "submission" / "submission.csv").write_text("id,y\n1,2\n")
    (root / "code" / "pkg").mkdir()
    (root / "code" / "pkg" / "train.py").write_text("print('hi')\n")
    (root / "logs" / "run.log").write_bytes(b"x" * 1000)
    return root


def members(archive_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive_path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_archive_holds_the_three_folders_and_a_matching_digest(tmp_path):
    import hashlib

    root = outputs(tmp_path / "sbx")
    archive = build_archive("sbx", root, tmp_path / "scratch", 1 << 20, BuildSlots())
    names = members(archive.path)
    assert {"submission", "logs", "code", "submission/submission.csv", "code/pkg/train.py",
            "logs/run.log"} <= set(names)  # fmt: skip
    data = b"".join(archive.chunks())
    assert len(data) == archive.size_bytes
    assert hashlib.sha256(data).hexdigest() == archive.sha256
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("submission/submission.csv").read() == b"id,y\n1,2\n"
    archive.remove()
    assert not archive.path.exists()


def test_links_and_special_files_are_never_followed_or_archived(tmp_path):
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("host secret")
    root = outputs(tmp_path / "sbx")
    (root / "submission" / "leak.csv").symlink_to(secret)
    (root / "code" / "up").symlink_to(tmp_path)
    (root / "code" / "loop").symlink_to(root / "code")
    os.mkfifo(root / "logs" / "pipe")
    # A top-level folder replaced by a link is skipped whole.
    (root / "logs" / "run.log").unlink()
    archive = build_archive("sbx", root, tmp_path / "scratch", 1 << 20, BuildSlots())
    names = set(members(archive.path))
    assert not {"submission/leak.csv", "code/up", "code/loop", "logs/pipe"} & names
    assert b"host secret" not in archive.path.read_bytes()
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
    # Even a whole output folder swapped for a link to the host.
    import shutil

    shutil.rmtree(root / "code")
    (root / "code").symlink_to(tmp_path)
    names = set(
        members(build_archive("sbx", root, tmp_path / "scratch", 1 << 20, BuildSlots()).path)
    )
    assert "code" in names and not any(n.startswith("code/") for n in names)


def test_size_cap_is_resource_exhausted_and_leaves_no_scratch(tmp_path):
    root = outputs(tmp_path / "sbx")
    (root / "code" / "big.bin").write_bytes(b"0" * 5000)
    with pytest.raises(ResourceExhaustedError) as err:
        build_archive("sbx", root, tmp_path / "scratch", 4000, BuildSlots())
    assert err.value.reason == "ARTIFACTS_TOO_LARGE"
    assert err.value.quota and "4000" in err.value.quota[0].description
    assert list((tmp_path / "scratch").iterdir()) == []
    assert outputs_size(root) == 5000 + 1000 + len("id,y\n1,2\n") + len("print('hi')\n")


def test_remove_tree_handles_read_only_folders_and_links(tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("keep")
    root = outputs(tmp_path / "sbx")
    (root / "code" / "link").symlink_to(keep)
    (root / "code" / "pkg").chmod(0o500)
    remove_tree(root)
    assert not root.exists() and keep.read_text() == "keep"


def test_a_link_swapped_in_at_any_level_during_the_walk_is_never_followed(tmp_path):
    """The agent's race: a real folder and a link to the answers trade places
    (RENAME_EXCHANGE) for the whole time archives are built."""
    answers = tmp_path / "private"
    answers.mkdir()
    (answers / "answers.csv").write_text("MARKER-answers\n")
    root = outputs(tmp_path / "sbx")
    real = root / "submission" / "work"
    real.mkdir()
    (real / "mine.csv").write_text("mine\n")
    (root / "submission" / "swap").symlink_to(answers)
    seen_mine = 0
    with exchange_forever(real, root / "submission" / "swap"):
        for _ in range(300):
            archive = build_archive("sbx", root, tmp_path / "scratch", 1 << 20, BuildSlots())
            data = archive.path.read_bytes()
            archive.remove()
            assert b"MARKER-answers" not in data
            seen_mine += b"mine" in data
    assert seen_mine > 0  # the agent's own file still comes through


def test_sparse_files_cost_no_scratch_disk_and_read_back_exactly(tmp_path):
    root = outputs(tmp_path / "sbx")
    sparse = root / "logs" / "sparse.bin"
    with sparse.open("wb") as handle:
        handle.truncate(1 << 30)
        handle.seek(5 << 20)
        handle.write(b"in the middle")
        handle.seek((1 << 30) - 3)
        handle.write(b"end")
    archive = build_archive("sbx", root, tmp_path / "scratch", 2 << 30, BuildSlots())
    assert archive.size_bytes > 1 << 30
    assert archive.path.stat().st_blocks * 512 < 16 << 20  # holes stayed holes
    with tarfile.open(archive.path) as tar:
        body = tar.extractfile("logs/sparse.bin")
        body.seek(5 << 20)
        assert body.read(13) == b"in the middle"
        body.seek((1 << 30) - 3)
        assert body.read() == b"end"
        assert tar.extractfile("submission/submission.csv").read() == b"id,y\n1,2\n"
    archive.remove()
    # The apparent size is what counts against the cap: holes are not free.
    with pytest.raises(ResourceExhaustedError):
        build_archive("sbx", root, tmp_path / "scratch", 512 << 20, BuildSlots())


def test_builds_are_one_per_sandbox_and_capped_in_all(tmp_path):
    root = outputs(tmp_path / "sbx")
    slots = BuildSlots(limit=2)
    first = build_archive("a", root, tmp_path / "scratch", 1 << 20, slots)
    with pytest.raises(ResourceExhaustedError) as err:
        build_archive("a", root, tmp_path / "scratch", 1 << 20, slots)
    assert err.value.reason == "ARTIFACTS_BUSY"
    second = build_archive("b", root, tmp_path / "scratch", 1 << 20, slots)
    with pytest.raises(ResourceExhaustedError):
        build_archive("c", root, tmp_path / "scratch", 1 << 20, slots)
    first.remove()
    second.remove()
    build_archive("a", root, tmp_path / "scratch", 1 << 20, slots).remove()
    # A refused or failed build gives its slot back.
    with pytest.raises(ResourceExhaustedError):
        build_archive("a", root, tmp_path / "scratch", 10, slots)
    build_archive("a", root, tmp_path / "scratch", 1 << 20, slots).remove()


def test_endless_nesting_is_refused_cleanly(tmp_path):
    root = outputs(tmp_path / "sbx")
    deep = root / "code"
    for _ in range(MAX_DEPTH + 2):
        deep = deep / "d"
    deep.mkdir(parents=True)
    with pytest.raises(ResourceExhaustedError) as err:
        build_archive("sbx", root, tmp_path / "scratch", 1 << 20, BuildSlots())
    assert err.value.reason == "ARTIFACTS_TOO_COMPLEX"
    assert list((tmp_path / "scratch").iterdir()) == []


def test_names_that_are_not_utf8_are_archived(tmp_path):
    root = outputs(tmp_path / "sbx")
    with open(os.path.join(os.fsencode(root / "code"), b"bad-\xff.txt"), "wb") as handle:
        handle.write(b"odd name")
    archive = build_archive("sbx", root, tmp_path / "scratch", 1 << 20, BuildSlots())
    with tarfile.open(archive.path, encoding="utf-8", errors="surrogateescape") as tar:
        assert tar.extractfile("code/bad-\udcff.txt").read() == b"odd name"


def test_a_submission_that_is_a_link_is_not_a_submission(tmp_path):
    root = outputs(tmp_path / "sbx")
    assert has_submission(root)
    real = root / "submission" / "submission.csv"
    real.rename(tmp_path / "elsewhere.csv")
    real.symlink_to(tmp_path / "elsewhere.csv")
    assert not has_submission(root)


def test_headers_count_against_the_cap(tmp_path):
    """Empty files with long names cost the agent nothing but make large headers."""
    root = outputs(tmp_path / "sbx")
    deep = root / "logs"
    for _ in range(8):
        deep = deep / ("n" * 200)
    deep.mkdir(parents=True)
    for i in range(300):
        (deep / f"{i:03d}{'x' * 200}").touch()
    with pytest.raises(ResourceExhaustedError) as err:
        build_archive("sbx", root, tmp_path / "scratch", 256 << 10, BuildSlots())
    assert err.value.reason == "ARTIFACTS_TOO_LARGE"
    assert list((tmp_path / "scratch").iterdir()) == []


def test_sizes_stop_at_the_walk_limits_instead_of_failing(tmp_path):
    root = outputs(tmp_path / "sbx")
    deep = root / "code"
    for _ in range(MAX_DEPTH + 5):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "buried.bin").write_bytes(b"x" * 100)
    assert outputs_size(root) == 1000 + len("id,y\n1,2\n") + len("print('hi')\n")
