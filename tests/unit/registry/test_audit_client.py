"""The audit chain client through a real registry server: appends made at once share calls
(a group commit), yet every caller gets exactly its own records, and one caller's refused
event fails no one else."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from mleb.evidence.chain import check_chain

from services.common.audit_client import AuditChainClient
from services.common.auth import Role
from services.common.channels import bearer_metadata
from services.common.errors import UnavailableError
from services.registry.app import registry_service
from services.registry.audit_chain import MAX_FIELDS_BYTES


@pytest.fixture
async def chain(serve, channel_to, settings, authority, tmp_path) -> AuditChainClient:
    registry = await serve(
        [registry_service(replace(settings, database_url=f"sqlite:///{tmp_path / 'r.db'}"))],
        settings,
    )
    token = authority.issue(Role.SERVICE, "test-sandbox")
    return AuditChainClient(channel_to(registry), bearer_metadata(token))


def _events(caller: int) -> list[tuple[str, dict]]:
    return [("sandbox_lifecycle", {"caller": caller, "n": n}) for n in range(1 + caller % 3)]


async def test_concurrent_appends_each_get_their_own_records_in_order(chain) -> None:
    results = await asyncio.gather(*(chain.append(_events(i)) for i in range(40)))
    seqs = []
    for caller, records in enumerate(results):
        assert [(r.body["caller"], r.body["n"]) for r in records] == [
            (caller, n) for n in range(1 + caller % 3)
        ]
        # One caller's events stay adjacent in the chain.
        assert [r.seq for r in records] == list(
            range(records[0].seq, records[0].seq + len(records))
        )
        seqs += [r.seq for r in records]
    assert sorted(seqs) == list(range(1, len(seqs) + 1))
    assert check_chain(await chain.export(1, 0)) == []


async def test_a_refused_event_fails_only_its_own_caller(chain) -> None:
    huge = ("sandbox_lifecycle", {"pad": "x" * (MAX_FIELDS_BYTES + 1)})
    calls = [chain.append(_events(i)) for i in range(10)]
    calls.insert(5, chain.append([huge]))
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = results.pop(5)
    assert isinstance(refused, UnavailableError) and "fields_json" in refused.message
    assert all(isinstance(r, list) and r for r in results), results
    exported = await chain.export(1, 0)
    assert len(exported) == sum(len(r) for r in results)
    assert all("pad" not in r.body for r in exported)
