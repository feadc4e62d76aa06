"""The public listing digest: its encoding, the registry's stored copy (imports and the
0005 migration's backfill), and ListPublicFiles' pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from mleb.public_listing import public_listing_digest

from services.common import db
from services.common.errors import FailedPreconditionError, InvalidArgumentError
from services.registry.core import MIGRATIONS_DIR, VERSION_TABLE
from services.registry.importers.own_format import import_competition
from services.registry.models import Base
from tests.fixtures.registry_trees import build_own_competition

SHA_A = "a" * 64
SHA_B = "b" * 64


def test_the_digest_is_a_fixed_encoding_of_the_sorted_listing() -> None:
    listing = [("train.csv", 10, SHA_A), ("images/1.png", 3, SHA_B)]
    digest = public_listing_digest(listing)
    # A contract between registries and nodes of different versions: pinned, not recomputed.
    assert digest == "9112e3f93d75a9cbd49532af0fe682def4207e28dc94c6c08e221578efffa5c3"
    assert public_listing_digest(reversed(listing)) == digest
    for changed in (
        [("train.csv", 11, SHA_A), ("images/1.png", 3, SHA_B)],
        [("train.csv", 10, SHA_B), ("images/1.png", 3, SHA_B)],
        [("train.csv", 10, SHA_A), ("images/1.png", 3, SHA_B), ("x", 0, SHA_A)],
        [("train.csv", 10, SHA_A)],
        # Moving a byte between path and size must not collide.
        [("train.csv1", 0, SHA_A), ("images/1.png", 3, SHA_B)],
    ):
        assert public_listing_digest(changed) != digest
    assert public_listing_digest([]) != public_listing_digest([("", 0, SHA_A)])


def _import(registry, tmp_path: Path, files: int, name: str = "own-comp") -> None:
    folder = build_own_competition(tmp_path / f"src-{files}", name)
    for index in range(files):
        (folder / "public" / "many" / f"{index:05d}.txt").parent.mkdir(exist_ok=True)
        (folder / "public" / "many" / f"{index:05d}.txt").write_text(str(index))
    import_competition(registry.installer, folder)


def _stored_listing(registry, competition_id: str = "own-comp") -> list[tuple[str, int, str]]:
    record = registry.core.get_competition(competition_id)
    return [(f.path, f.size_bytes, f.sha256) for f in record.public_files]


def test_imports_store_the_digest_and_count(registry, tmp_path: Path) -> None:
    _import(registry, tmp_path, 25)
    record = registry.core.get_competition("own-comp", with_files=False)
    assert record.public_files == []
    assert record.public_file_count == 27  # train.csv, sample_submission.csv and 25 more
    assert record.public_listing_digest == public_listing_digest(_stored_listing(registry))


def test_pages_cover_the_listing_once_in_order(registry, tmp_path: Path) -> None:
    _import(registry, tmp_path, 25)
    seen, token, pages = [], "", 0
    while True:
        page = registry.core.list_public_files("own-comp", page_size=4, page_token=token)
        assert len(page.files) <= 4
        seen.extend((f.path, f.size_bytes, f.sha256) for f in page.files)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 7 and len(seen) == 27 == len(set(seen))
    assert public_listing_digest(seen) == page.listing_digest
    assert sorted(seen) == sorted(_stored_listing(registry))


def test_a_token_from_before_a_reimport_is_refused(registry, tmp_path: Path) -> None:
    _import(registry, tmp_path, 10)
    first = registry.core.list_public_files("own-comp", page_size=5)
    _import(registry, tmp_path, 11)
    with pytest.raises(FailedPreconditionError) as refused:
        registry.core.list_public_files("own-comp", page_size=5, page_token=first.next_page_token)
    assert refused.value.reason == "PUBLIC_LISTING_CHANGED"


@pytest.mark.parametrize("page_size", [-1, 10_001])
def test_page_sizes_out_of_range_are_refused(registry, tmp_path: Path, page_size: int) -> None:
    _import(registry, tmp_path, 1)
    with pytest.raises(InvalidArgumentError, match="page_size"):
        registry.core.list_public_files("own-comp", page_size=page_size)


def test_forged_and_borrowed_tokens_are_refused(registry, tmp_path: Path) -> None:
    _import(registry, tmp_path, 10)
    _import(registry, tmp_path, 10, name="other-comp")
    other = registry.core.list_public_files("other-comp", page_size=3).next_page_token
    competitions = registry.core.list_competitions(page_size=1).next_page_token
    for token in (other, competitions, "not base64 !", "bnVsbA", "W10", other[:-4]):
        with pytest.raises(InvalidArgumentError, match="page_token"):
            registry.core.list_public_files("own-comp", page_token=token)


def test_the_migration_backfills_earlier_imports(registry, tmp_path: Path) -> None:
    _import(registry, tmp_path, 12)
    expected = public_listing_digest(_stored_listing(registry))
    engine = registry.core._engine
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["version_table"] = VERSION_TABLE
    # Back to a 0004 database, which holds the import but not the new columns.
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004_audit_chain")
    db.run_migrations(engine, MIGRATIONS_DIR, VERSION_TABLE)
    record = registry.core.get_competition("own-comp", with_files=False)
    assert record.public_listing_digest == expected and record.public_file_count == 14
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
