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


async def test_answers_that_outgrow_the_cache_with_what_a_grade_derived_leave_it(
    registry_channel, service_token
):
    measured = await (
        await _graded(registry_channel, service_token, ParsedAnswersCache(64 * 1024**2))
    ).get(COMPETITION)
    # Room for the parsed answers, not for their id order too.
    cache = ParsedAnswersCache(measured.memory_bytes + 8)
    provider = RegistryBundleProvider(registry_channel, bearer(service_token), cache)
    bundle = await provider.get(COMPETITION)
    assert cache.get(bundle.digest) is bundle and cache.held_bytes == bundle.memory_bytes
    outcome, _version = await GraderCore(provider).score(COMPETITION, io.BytesIO(submission_csv()))
    assert outcome.valid
    assert cache.get(bundle.digest) is None and cache.held_bytes == 0
