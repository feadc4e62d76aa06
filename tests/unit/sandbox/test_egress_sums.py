"""The egress log a node runner writes back (egress.json): summed per destination, capped,
and read back only when it has exactly the shape the runner writes."""

from __future__ import annotations

import json

import pytest

from services.sandbox.node.egress_proxy import EgressEvent, EgressSums, EgressVerdict


def event(host: str, verdict: EgressVerdict = EgressVerdict.ALLOWED, sent: int = 10) -> EgressEvent:
    return EgressEvent(host, 443, "203.0.113.7", verdict, sent, 20, 100.0, 101.0)


def test_events_are_summed_per_destination_and_capped():
    sums = EgressSums(max_destinations=2)
    for e in (event("a"), event("a", sent=5), event("b"), event("c"), event("c")):
        sums.add(e)
    assert sums.omitted == 2  # "c" came after the cap
    first = sums.sums[("a", 443, "203.0.113.7", EgressVerdict.ALLOWED.value)]
    assert (first.connections, first.bytes_sent, first.bytes_received) == (2, 15, 40)
    again = EgressSums.from_json(json.loads(json.dumps(sums.to_json())))
    assert again.sums == sums.sums and again.omitted == 2


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"max_destinations": 2, "omitted": 0},
        {
            "max_destinations": 2,
            "omitted": 0,
            "sums": [["a", 443, "x", "NOT_A_VERDICT", 1, 0, 0, 1, 2]],
        },
        {
            "max_destinations": 2,
            "omitted": 0,
            "sums": [["a", 443, "x", "ALLOWED", 1e999, 0, 0, 1, 2]],
        },
        {
            "max_destinations": 2,
            "omitted": 0,
            "sums": [["a", 443, "x", "ALLOWED", None, 0, 0, 1, 2]],
        },
        {"max_destinations": 2, "omitted": 0, "sums": [["a", 443]]},
        {"max_destinations": 2, "omitted": 0, "sums": "abc"},
        {"max_destinations": "many", "omitted": 0, "sums": []},
    ],
)
def test_a_malformed_log_is_a_value_error(raw):
    with pytest.raises(ValueError, match="not an egress log"):
        EgressSums.from_json(raw)


def test_a_long_log_is_cut_at_the_cap_and_its_strings_bounded():
    row = ["h" * 10_000, 443, "a" * 1000, "ALLOWED", 1, 2, 3, 1.0, 2.0]
    sums = EgressSums.from_json({"max_destinations": 3, "omitted": 0, "sums": [row] * 100})
    ((host, _port, address, _verdict),) = sums.sums
    assert len(host) == 512 and len(address) == 64
