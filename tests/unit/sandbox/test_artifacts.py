"""Archiving agent-written folders safely, with a size cap, and removing them."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from services.common.errors import ResourceExhaustedError
from services.sandbox.artifacts import build_archive, outputs_size, remove_tree


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
    archive = build_archive("sbx", root, tmp_path / "scratch", 1 << 20)
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
    archive = build_archive("sbx", root, tmp_path / "scratch", 1 << 20)
    names = set(members(archive.path))
    assert not {"submission/leak.csv", "code/up", "code/loop", "logs/pipe"} & names
    assert b"host secret" not in archive.path.read_bytes()
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
    # Even a whole output folder swapped for a link to the host.
    import shutil

    shutil.rmtree(root / "code")
    (root / "code").symlink_to(tmp_path)
    names = set(members(build_archive("sbx", root, tmp_path / "scratch", 1 << 20).path))
    assert "code" in names and not any(n.startswith("code/") for n in names)


def test_size_cap_is_resource_exhausted_and_leaves_no_scratch(tmp_path):
    root = outputs(tmp_path / "sbx")
    (root / "code" / "big.bin").write_bytes(b"0" * 5000)
    with pytest.raises(ResourceExhaustedError) as err:
        build_archive("sbx", root, tmp_path / "scratch", 4000)
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
