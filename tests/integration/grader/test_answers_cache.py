"""The grader's answers cache, fed by a real registry server: it is bounded by what the
parsed answers hold in memory, including what grades derive from them."""

from __future__ import annotations

import io

import grpc
import pytest

from services.grader.bundles import ParsedAnswersCache
from services.grader.competitions.id_order import ORDERS
from services.grader.core import GraderCore
from services.grader.registry_bundles import RegistryBundleProvider
from services.registry.app import registry_service
from tests.conftest import bearer
from tests.fixtures.grading_stack import COMPETITION, submission_csv


@pytest.fixture
async def registry_channel(serve, imported_settings):
    registry = await serve([registry_service(imported_settings)], imported_settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{registry.port}")
    yield channel
    await channel.close()


async def _graded(channel, token: str, cache: ParsedAnswersCache) -> RegistryBundleProvider:
    provider = RegistryBundleProvider(channel, bearer(token), cache)
    outcome, _version = await GraderCore(provider).score(COMPETITION, io.BytesIO(submission_csv()))
    assert outcome.valid and outcome.score == 1.0
    return provider


async def test_the_cache_counts_the_parsed_answers_and_the_id_order_a_grade_left(
    registry_channel, service_token
):
    cache = ParsedAnswersCache(64 * 1024**2)
    bundle = await (await _graded(registry_channel, service_token, cache)).get(COMPETITION)
    answers = bundle.answers
    assert bundle.memory_bytes == answers.memory_usage(index=True, deep=True).sum()
    # Python strings weigh more than their CSV text: counting the CSV undercounted.
    assert bundle.memory_bytes > bundle.answers_size_bytes
    order = ORDERS.get(answers["PassengerId"])
    assert order is not None and order.nbytes >= 2 * 8 * len(answers)
    assert cache.held_bytes == bundle.memory_bytes + order.nbytes


async def test_a_bundle_is_kept_only_with_room_for_all_its_grades_may_derive(
    registry_channel, service_token
):
    """Admitted on its bound, a bundle is never pushed out by its own grades (and then
    fetched and parsed again on every call); one byte less and it is not kept at all."""
    measured = await (
        await _graded(registry_channel, service_token, ParsedAnswersCache(64 * 1024**2))
    ).get(COMPETITION)
    bound = measured.memory_bytes + measured.derived_bytes_bound
    # Two text columns (PassengerId, and Transported as the own-format import wrote it) or
    # one: either way more than the order the grade makes.
    assert measured.derived_bytes_bound >= 16 * len(measured.answers)
    for room, kept in ((bound, True), (bound - 1, False)):
        cache = ParsedAnswersCache(room)
        provider = await _graded(registry_channel, service_token, cache)
        await GraderCore(provider).score(COMPETITION, io.BytesIO(submission_csv()))
        bundle = await provider.get(COMPETITION)
        assert (cache.get(bundle.digest) is bundle) is kept
        assert cache.held_bytes <= room
        if kept:
            order = ORDERS.get(bundle.answers["PassengerId"])
            assert cache.held_bytes == bundle.memory_bytes + order.nbytes
