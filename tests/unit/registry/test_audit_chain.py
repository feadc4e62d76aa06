"""The audit chain on SQLite and PostgreSQL: concurrent appends never fork it, bodies hash to
what is stored, and a lab sees other labs' records only as hashes that still link."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from mleb.evidence.chain import GENESIS, check_chain

from services.common.auth import Caller, Role
from services.common.errors import InvalidArgumentError
from services.registry.audit_chain import AuditChain, parse_event

SERVICE = Caller(Role.SERVICE, "grader")
LAB_A = Caller(Role.LAB, "alice", tenant="lab-a")


def _event(tenant: str, role: str = "lab", n: int = 0) -> dict:
    return parse_event("grader_call", json.dumps({"tenant": tenant, "role": role, "n": n}), 0)


def test_concurrent_appends_make_one_unbroken_chain(registry) -> None:
    chain = AuditChain(registry.core.sessions)
    # Two chain objects, as two registry replicas would have, writing at once.
    other = AuditChain(registry.core.sessions)

    def append(i: int):
        writer = chain if i % 2 else other
        return asyncio.run(writer.append("grader", [_event("lab-a", n=i), _event("lab-b", n=i)]))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(append, range(40)))
    # Each call's two events are adjacent: one transaction, one writer at a time.
    for first, second in results:
        assert second.seq == first.seq + 1 and second.prev_hash == first.hash
    records, next_from, head = asyncio.run(chain.export(SERVICE, 1, 0))
    assert head == 80 and next_from == 0 and [r.seq for r in records] == list(range(1, 81))
    assert records[0].prev_hash == GENESIS and check_chain(records) == []
    assert all(r.body["reporter"] == "grader" and r.body["seq"] == r.seq for r in records)
    # Each tenant's records are numbered without a gap, however the writers interleaved.
    for tenant in ("lab-a", "lab-b"):
        numbers = [r.body["tenant_seq"] for r in records if r.body["tenant"] == tenant]
        assert numbers == list(range(1, 41))


def test_a_lab_sees_only_its_own_bodies_and_the_links_still_check(registry) -> None:
    chain = AuditChain(registry.core.sessions)
    asyncio.run(chain.append("grader", [_event("lab-a"), _event("lab-b"), _event("x", "service")]))
    records, _next, _head = asyncio.run(chain.export(LAB_A, 1, 0))
    # A service-role record of another tenant stays hidden too: bodies go by tenant alone.
    assert [r.body is not None for r in records] == [True, False, False]
    assert records[0].body["tenant_seq"] == 1
    assert check_chain(records) == []
    # Paging: a range past the head is cut at the head.
    page, next_from, head = asyncio.run(chain.export(LAB_A, 2, 99))
    assert [r.seq for r in page] == [2, 3] and next_from == 0 and head == 3


@pytest.mark.parametrize(
    ("kind", "fields", "why"),
    [
        ("grader_call", '{"seq": 1}', "set by the registry"),
        ("grader_call", '{"time": "2020"}', "set by the registry"),
        ("grader_call", "[1]", "JSON object"),
        ("grader_call", '{"x": NaN}', "not JSON"),
        ("grader_call", '{"x": 1e400}', "not JSON"),
        ("grader_call", '{"tenant_seq": 1}', "set by the registry"),
        ("grader_call", '{"x": ' + "[" * 20000 + "]" * 20000 + "}", "not JSON"),
        ("grader_call", "{" + '"a":' * 10 + "1", "not JSON"),
        ("made_up", "{}", "one of"),
    ],
    ids=["seq", "time", "array", "nan", "unclosed", "kind", "infinity", "tenant-seq", "deep"],
)
def test_events_a_service_cannot_append(kind: str, fields: str, why: str) -> None:
    """Each is INVALID_ARGUMENT naming the field, never INTERNAL."""
    with pytest.raises(InvalidArgumentError) as error:
        parse_event(kind, fields, 0)
    assert why in str(error.value) or why in str(error.value.field_violations)
