"""Public data through S3 (dev_s3.sh's server): the scenarios of
tests/integration/sandbox/test_public_data_store.py, on a real bucket."""

from __future__ import annotations

import pytest

from services.storage.base import ObjectStore
from services.storage.config import open_store
from tests.fixtures.dev_clusters import DevCluster
from tests.fixtures.object_stores import new_bucket, s3_settings
from tests.integration.sandbox import test_public_data_fetch
from tests.integration.sandbox.test_public_data_store import (
    HOSTILE,
    hostile_archive_is_refused,
    node_b_reads_the_store,
    tampered_copy_falls_back,
)

registry = test_public_data_fetch.registry  # the real registry on port 0, as a fixture here


@pytest.fixture
def store(s3_cluster: DevCluster) -> ObjectStore:
    return open_store(s3_settings(s3_cluster, f"s3://{new_bucket(s3_cluster)}/mleb"))


async def test_node_b_reads_the_store_without_the_registry(registry, store, tmp_path) -> None:
    await node_b_reads_the_store(registry, store, tmp_path)


async def test_a_tampered_copy_falls_back_to_the_registry(registry, store, tmp_path) -> None:
    await tampered_copy_falls_back(registry, store, tmp_path)


@pytest.mark.parametrize("kind", HOSTILE)
async def test_a_hostile_archive_is_refused(registry, store, tmp_path, kind) -> None:
    await hostile_archive_is_refused(registry, store, tmp_path, kind)
