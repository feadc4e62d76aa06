"""Artifact extraction: hostile archives on every supported Python, 3.11.2 included."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest
from mleb.lab.artifact_extraction import UnsafeArchive, extract_artifacts


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


def test_artifacts_land_in_the_three_folders(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "logs" / "stale.txt").write_text("from a killed download")
    archive = _tar(tmp_path / "a.tar", [
        (_member("submission", tarfile.DIRTYPE), b""),
        (_member("submission/submission.csv"), b"id,y\n1,2\n"),
        (_member("logs/deep/agent.log"), b"hello"),
        (_member("code", tarfile.DIRTYPE), b""),
    ])  # fmt: skip
    extract_artifacts(archive, run_dir)
    assert (run_dir / "submission" / "submission.csv").read_bytes() == b"id,y\n1,2\n"
    assert (run_dir / "logs" / "deep" / "agent.log").read_text() == "hello"
    assert not (run_dir / "logs" / "stale.txt").exists()
    assert list((run_dir / "code").iterdir()) == []


@pytest.mark.parametrize(
    "member",
    [
        _member("../escape.txt"),
        _member("/etc/evil"),
        _member("submission/../../escape.txt"),
        _member("elsewhere/file.txt"),
        _member("logs/link", tarfile.SYMTYPE, "/etc/passwd"),
        _member("logs/hard", tarfile.LNKTYPE, "submission/submission.csv"),
        _member("logs/device", tarfile.CHRTYPE),
        _member("logs/fifo", tarfile.FIFOTYPE),
    ],
    ids=lambda m: m.name,
)
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path, member) -> None:
    run_dir = tmp_path / "group" / "run"
    (run_dir / "submission").mkdir(parents=True)
    (run_dir / "submission" / "keep.csv").write_text("kept")
    archive = _tar(tmp_path / "a.tar", [(_member("logs/ok.txt"), b"ok"), (member, b"x")])
    with pytest.raises(UnsafeArchive):
        extract_artifacts(archive, run_dir)
    assert (run_dir / "submission" / "keep.csv").read_text() == "kept"
    assert not (run_dir / "logs").exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["a.tar", "group", "run", "submission", "keep.csv"]
    )


def test_modes_owners_and_setuid_bits_from_the_archive_are_dropped(tmp_path: Path) -> None:
    setuid = _member("code/suid")
    setuid.mode, setuid.uid, setuid.gid = 0o6777, 0, 0
    folder = _member("logs/open", tarfile.DIRTYPE)
    folder.mode = 0o7777
    archive = _tar(tmp_path / "a.tar", [(setuid, b"#!/bin/sh\n"), (folder, b"")])
    extract_artifacts(archive, tmp_path / "run")
    assert stat.S_IMODE((tmp_path / "run" / "code" / "suid").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "run" / "logs" / "open").stat().st_mode) & 0o7022 == 0


def test_a_link_left_in_the_run_folder_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "submission").symlink_to(outside)
    archive = _tar(tmp_path / "a.tar", [(_member("submission/submission.csv"), b"id\n")])
    extract_artifacts(archive, run_dir)
    assert list(outside.iterdir()) == []
    assert not (run_dir / "submission").is_symlink()
    assert (run_dir / "submission" / "submission.csv").read_bytes() == b"id\n"


@pytest.mark.parametrize(
    "names",
    [["logs/x", "logs/x/y"], ["logs/x/y", "logs/x"]],
    ids=["file-then-folder", "folder-then-file"],
)
def test_a_name_used_as_file_and_folder_is_refused(tmp_path: Path, names: list[str]) -> None:
    archive = _tar(tmp_path / "a.tar", [(_member(name), b"x") for name in names])
    with pytest.raises(UnsafeArchive):
        extract_artifacts(archive, tmp_path / "run")


@pytest.mark.parametrize("name", ["submission/./x", "./submission/x", "logs//x", "submission/"])
def test_odd_spellings_are_refused(tmp_path: Path, name: str) -> None:
    archive = _tar(tmp_path / "a.tar", [(_member(name), b"x")])
    with pytest.raises(UnsafeArchive):
        extract_artifacts(archive, tmp_path / "run")


@pytest.mark.parametrize(
    "name", ["logs/" + "n" * 300, "logs/" + "/".join(["d" * 250] * 20) + "/f"], ids=["long", "deep"]
)
def test_names_the_disk_cannot_hold_are_refused_up_front(tmp_path: Path, name: str) -> None:
    archive = _tar(tmp_path / "a.tar", [(_member(name), b"x")])
    with pytest.raises(UnsafeArchive):
        extract_artifacts(archive, tmp_path / "run")


def test_a_sparse_member_is_refused_not_expanded(tmp_path: Path) -> None:
    # PAX 0.1 sparse headers: 5 stored bytes standing for a 50 MB file.
    info = _member("logs/big")
    info.pax_headers = {
        "GNU.sparse.map": "49999995,5",
        "GNU.sparse.size": "50000000",
        "GNU.sparse.name": "logs/big",
    }
    archive = tmp_path / "sparse.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        info.size = 5
        tar.addfile(info, io.BytesIO(b"12345"))
    with tarfile.open(archive) as tar:
        assert tar.getmembers()[0].issparse()  # as the reader sees it
    with pytest.raises(UnsafeArchive, match="sparse"):
        extract_artifacts(archive, tmp_path / "run")
    assert not (tmp_path / "run" / "logs" / "big").exists()
