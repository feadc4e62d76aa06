"""RegistryCore without a server: listings, reads, downloads, bundles and every bad input."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from services.common.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from services.registry.importers.install import bundle_digest
from services.registry.importers.mlebench import import_mlebench
from services.registry.importers.own_format import import_competition
from tests.fixtures.registry_trees import (
    ALPHA_SCORES,
    build_mlebench_tree,
    build_own_competition,
)


@pytest.fixture
def imported(registry, tmp_path: Path):
    tree = build_mlebench_tree(tmp_path / "src")
    import_mlebench(registry.installer, tree.repo, tree.data_dir)
    import_competition(registry.installer, build_own_competition(tmp_path / "own"))
    return registry


def ids(page) -> list[str]:
    return [c.id for c in page.competitions]


def test_list_filters(imported) -> None:
    core = imported.core
    assert ids(core.list_competitions()) == [
        "alpha-cls",
        "beta-reg",
        "epsilon-nodata",
        "gamma-lfs",
        "own-comp",
    ]
    assert ids(core.list_competitions(split="low")) == ["alpha-cls", "own-comp"]
    assert ids(core.list_competitions(split="lite")) == ["alpha-cls", "own-comp"]
    assert ids(core.list_competitions(split="all")) == ["alpha-cls", "beta-reg", "gamma-lfs"]
    assert ids(core.list_competitions(split="split75")) == ids(core.list_competitions(split="all"))
    assert ids(core.list_competitions(split="dev", category="tabular")) == ["own-comp"]
    assert ids(core.list_competitions(category="Image Classification")) == [
        "alpha-cls",
        "gamma-lfs",
    ]
    assert ids(core.list_competitions(complexity="high")) == ["epsilon-nodata", "gamma-lfs"]
    # A known split with no members is empty, not an error.
    assert ids(core.list_competitions(split="systemcard")) == []


def test_list_pagination(imported) -> None:
    core = imported.core
    seen, token, pages = [], "", 0
    while True:
        page = core.list_competitions(page_size=2, page_token=token)
        assert page.total_size == 5
        seen += ids(page)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3 and seen == ids(core.list_competitions())
    first = core.list_competitions(split="all", page_size=1)
    assert first.total_size == 3
    with pytest.raises(InvalidArgumentError, match="different filters"):
        core.list_competitions(split="low", page_token=first.next_page_token)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"page_size": -1}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"page_token": "garbage!"}, "page_token"),
        ({"page_token": "eyJ4IjogMX0"}, "page_token"),  # valid base64 JSON, wrong shape
        ({"split": "no-such-split"}, "split"),
        ({"complexity": "extreme"}, "complexity"),
    ],
)
def test_list_bad_arguments(imported, kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        imported.core.list_competitions(**kwargs)
    assert caught.value.violations[0].field == field


def test_get_descriptions(imported) -> None:
    core = imported.core
    assert core.get_competition("alpha-cls").description.startswith("# alpha-cls")
    assert core.get_competition("alpha-cls", obfuscated=True).description.startswith("# A task")
    with pytest.raises(FailedPreconditionError, match="no obfuscated description"):
        core.get_competition("own-comp", obfuscated=True)


@pytest.mark.parametrize("bad_id", ["nope", "../alpha-cls", "alpha-cls/", "x" * 500, "a\x00b"])
def test_unknown_ids_are_not_found(imported, bad_id: str) -> None:
    for call in (
        imported.core.get_competition,
        imported.core.get_leaderboard,
        imported.core.iter_public_file_chunks,
        imported.core.grading_bundle,
    ):
        with pytest.raises(NotFoundError):
            call(bad_id)


def test_empty_id_is_invalid(imported) -> None:
    with pytest.raises(InvalidArgumentError):
        imported.core.get_competition("")


def test_leaderboard_and_thresholds(imported) -> None:
    record, ranking = imported.core.get_leaderboard("alpha-cls")
    assert [e.score for e in record.leaderboard] == ALPHA_SCORES
    assert record.leaderboard[0].team_name == "100"
    assert record.leaderboard[0].extra["hasScore"] == "True"
    assert (ranking.gold_threshold, ranking.silver_threshold, ranking.bronze_threshold) == (
        ALPHA_SCORES[1],
        ALPHA_SCORES[3],
        ALPHA_SCORES[7],
    )
    record, ranking = imported.core.get_leaderboard("gamma-lfs")
    assert record.leaderboard == [] and ranking.gold_threshold is None


def download(core, competition_id: str, paths: list[str] | None = None) -> dict[str, bytes]:
    files: dict[str, bytearray] = {}
    for chunk in core.iter_public_file_chunks(competition_id, paths):
        data = files.setdefault(chunk.path, bytearray())
        assert chunk.offset == len(data)
        data += chunk.data
        if chunk.last_chunk:
            assert len(data) == chunk.size_bytes
            assert hashlib.sha256(data).hexdigest() == chunk.sha256
    return {k: bytes(v) for k, v in files.items()}


def test_download_everything_and_parts(imported, tmp_path: Path) -> None:
    core = imported.core
    everything = download(core, "beta-reg")
    assert set(everything) == {
        "images/a.png",
        "images/nested/b.png",
        "sample_submission.csv",
        "train.csv",
    }
    source = tmp_path / "src" / "mlebench-data" / "beta-reg" / "prepared" / "public"
    assert everything["images/a.png"] == (source / "images" / "a.png").read_bytes()
    assert set(download(core, "beta-reg", ["images"])) == {"images/a.png", "images/nested/b.png"}
    assert set(download(core, "beta-reg", ["./train.csv", "train.csv"])) == {"train.csv"}


def test_download_chunks_are_bounded(imported) -> None:
    sizes = [len(c.data) for c in imported.core.iter_public_file_chunks("beta-reg", ["images"])]
    assert max(sizes) <= imported.core.chunk_bytes
    assert len(sizes) > 2  # a.png spans several chunks


@pytest.mark.parametrize(
    "path",
    [
        "../private/test.csv",
        "images/../../private/test.csv",
        "/etc/passwd",
        "C:/windows",
        "..\\private\\test.csv",
        "",
        "/",
        "a\x00b",
    ],
)
def test_path_tricks_are_invalid(imported, path: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        list(imported.core.iter_public_file_chunks("alpha-cls", [path]))
    assert caught.value.violations[0].field == "paths[0]"


def test_unknown_path_is_not_found(imported) -> None:
    with pytest.raises(NotFoundError):
        list(imported.core.iter_public_file_chunks("alpha-cls", ["nope.csv"]))
    # Private files are never public, even by their exact name.
    with pytest.raises(NotFoundError):
        list(imported.core.iter_public_file_chunks("alpha-cls", ["private/test.csv"]))


def test_planted_symlink_cannot_escape(imported) -> None:
    storage = imported.core.storage
    target = storage.public_dir("alpha-cls") / "train.csv"
    target.unlink()
    os.symlink(storage.private_dir("alpha-cls") / "test.csv", target)
    with pytest.raises(InvalidArgumentError, match="outside the public data"):
        list(imported.core.iter_public_file_chunks("alpha-cls", ["train.csv"]))
    with pytest.raises(InvalidArgumentError):
        list(imported.core.iter_public_file_chunks("alpha-cls"))


def test_changed_file_is_refused(imported) -> None:
    (imported.core.storage.public_dir("alpha-cls") / "train.csv").write_text("longer content\n")
    with pytest.raises(FailedPreconditionError, match="changed on disk"):
        list(imported.core.iter_public_file_chunks("alpha-cls", ["train.csv"]))


def test_metadata_only_has_no_data(imported) -> None:
    with pytest.raises(FailedPreconditionError, match="no prepared data"):
        imported.core.iter_public_file_chunks("epsilon-nodata")
    with pytest.raises(FailedPreconditionError):
        imported.core.grading_bundle("epsilon-nodata")


def test_grading_bundle(imported) -> None:
    header, chunks = imported.core.grading_bundle("alpha-cls")
    answers = b"".join(chunks)
    assert answers == b"id,label\n3,a\n4,b\n"
    assert header.answers.sha256 == hashlib.sha256(answers).hexdigest()
    assert header.answers.format == "csv" and header.answers.size_bytes == len(answers)
    assert [e.score for e in header.leaderboard] == ALPHA_SCORES
    assert header.digest == bundle_digest(
        header.answers.sha256,
        header.leaderboard,
        header.metric,
        lower_is_better=header.lower_is_better,
        awards_medals=header.awards_medals,
    )
    assert not header.not_modified
    cached, rest = imported.core.grading_bundle("alpha-cls", header.digest)
    assert cached.not_modified and list(rest) == []
    stale, rest = imported.core.grading_bundle("alpha-cls", "0" * 64)
    assert not stale.not_modified and b"".join(rest) == answers


def test_list_splits(imported) -> None:
    splits = {s.name: s for s in imported.core.list_splits()}
    assert list(splits) == ["low", "medium", "high", "all", "dev"]
    assert splits["low"].aliases == ("lite",)
    assert splits["all"].aliases == ("split75",)
    assert splits["all"].competition_ids == ("alpha-cls", "beta-reg", "gamma-lfs")
