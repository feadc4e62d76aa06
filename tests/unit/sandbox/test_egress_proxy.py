"""The allowlist proxy against local and private addresses, driven over real loopback sockets:
an allowlisted name is not enough, what it resolves to must be permitted too, and the proxy
connects to exactly the address it checked."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator

import pytest

from services.common.errors import InvalidArgumentError
from services.sandbox.node.egress_proxy import (
    AddressPolicy,
    BadHost,
    EgressEvent,
    EgressProxy,
    EgressVerdict,
    canonical_host,
    host_addresses,
    parse_address_allowances,
    parse_allowlist,
)

NOBODY_OWNS = AddressPolicy(own_addresses=set)


class Upstream:
    """A loopback TCP service that counts who reached it and answers each request."""

    def __init__(self) -> None:
        self.connections = 0
        self.received = b""
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        data = await reader.read(65536)
        self.received += data
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nupstream")
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with Upstream() as server:
        yield server


async def through(proxy: EgressProxy, request: bytes) -> bytes:
    """Sends one request to the proxy over loopback TCP and returns everything it answers."""
    handled = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await proxy.handle(reader, writer)
        finally:
            handled.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(15):
            answer = await reader.read()
            writer.close()
            # The proxy logs a connection once both directions have ended.
            await handled.wait()
        return answer
    finally:
        server.close()


def recording(rules: list[str], policy: AddressPolicy = NOBODY_OWNS, resolve=None):
    events: list[EgressEvent] = []
    proxy = EgressProxy("sbx-test", parse_allowlist(rules), policy, events.append, resolve)
    return proxy, events


# Odd spellings of this host. Each is allowlisted as written where the allowlist accepts it.
LOOPBACK_SPELLINGS = [
    "localhost",
    "LOCALHOST.",
    "LocalHost..",
    "127.0.0.1",
    "127.0.0.1.",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::FFFF:7F00:1]",
    "0.0.0.0",
    "[::]",
    "[0:0:0:0:0:0:0:1]",
]
# Spellings a resolver reads as an address: refused as bad hosts, allowlisted or not.
SHORTHAND_SPELLINGS = ["127.1", "0x7f.1", "2130706433", "0177.0.0.1", "0x7f000001", "127.0.1"]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
async def test_allowlisted_loopback_spellings_are_refused_and_never_reached(upstream, spelling):
    for method in ("CONNECT", "GET"):
        proxy, events = recording([f"{spelling}:{upstream.port}"])
        if method == "CONNECT":
            request = f"CONNECT {spelling}:{upstream.port} HTTP/1.1\r\n\r\n"
        else:
            request = f"GET http://{spelling}:{upstream.port}/x HTTP/1.1\r\nHost: a\r\n\r\n"
        answer = await through(proxy, request.encode())
        assert answer.startswith(b"HTTP/1.1 403"), (spelling, method, answer)
        assert b"forbidden address" in answer
        assert [e.verdict for e in events] == [EgressVerdict.FORBIDDEN_ADDRESS]
        assert events[0].address == "" and events[0].bytes_sent == 0
    assert upstream.connections == 0


@pytest.mark.parametrize("spelling", [*SHORTHAND_SPELLINGS, "[fe80::1%lo]", "[::1%25lo]"])
async def test_numeric_shorthand_and_zone_ids_are_bad_hosts(upstream, spelling):
    proxy, events = recording(["localhost", "*.example.org"])
    answer = await through(proxy, f"CONNECT {spelling}:{upstream.port} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert [e.verdict for e in events] == [EgressVerdict.BAD_HOST]
    assert upstream.connections == 0


@pytest.mark.parametrize("spelling", [*SHORTHAND_SPELLINGS, "fe80::1%eth0", "[::1%lo]:80"])
def test_the_allowlist_refuses_shorthand_and_zone_ids_when_created(spelling):
    with pytest.raises(InvalidArgumentError) as err:
        parse_allowlist([spelling])
    assert err.value.violations[0].field == "allowed_hosts[0]"


def test_canonical_hosts():
    assert canonical_host("API.Example.ORG.") == "api.example.org"
    assert canonical_host("[::FFFF:127.0.0.1]") == "::ffff:7f00:1"
    assert canonical_host("0:0::1") == "::1"
    for bad in ["", ".", "a..b", "-a.com", "a b", "ex\u00e4mple.com", "x" * 64 + ".com"]:
        with pytest.raises(BadHost):
            canonical_host(bad)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "0.0.0.0", "0.1.2.3", "::",
        "169.254.169.254", "fe80::1", "10.1.2.3", "172.17.0.1", "192.168.1.1", "fd00::1",
        "100.64.0.1", "224.0.0.1", "239.255.255.250", "ff02::1", "64:ff9b::7f00:1",
        "240.0.0.1", "255.255.255.255", "::ffff:10.0.0.1", "192.0.0.1", "198.18.0.1",
    ],
)  # fmt: skip
def test_local_private_and_special_addresses_are_refused(address):
    assert NOBODY_OWNS.refusal(ipaddress.ip_address(address)) is not None


def test_public_addresses_pass_unless_the_host_owns_them():
    public = ipaddress.ip_address("8.8.4.4")
    assert NOBODY_OWNS.refusal(public) is None
    assert NOBODY_OWNS.refusal(ipaddress.ip_address("2606:4700:4700::1111")) is None
    owned = AddressPolicy(own_addresses=lambda: {public})
    assert owned.refusal(public) == "one of this host's own addresses"
    assert owned.refusal(ipaddress.ip_address("::ffff:8.8.4.4")) is not None


def test_the_hosts_own_addresses_are_read_from_the_kernel():
    own = host_addresses()
    assert ipaddress.ip_address("127.0.0.1") in own


def test_operator_allowances_lift_the_address_check_for_those_addresses_only():
    policy = AddressPolicy(
        parse_address_allowances(["127.0.0.1", " 172.17.0.0/16 ", ""], "X"), own_addresses=set
    )
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("172.17.3.4")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) == "loopback"
    assert policy.refusal(ipaddress.ip_address("10.0.0.1")) == "private"
    with pytest.raises(InvalidArgumentError) as err:
        parse_address_allowances(["localhost"], "MLEB_SANDBOX_EGRESS_ALLOW_ADDRESSES")
    assert err.value.violations[0].field == "MLEB_SANDBOX_EGRESS_ALLOW_ADDRESSES"


async def test_an_operator_allowed_address_is_reached_and_logged_with_its_bytes(upstream):
    policy = AddressPolicy(parse_address_allowances(["127.0.0.1"], "X"), own_addresses=set)
    proxy, events = recording([f"localhost:{upstream.port}"], policy)
    answer = await through(
        proxy, f"GET http://LocalHost.:{upstream.port}/x HTTP/1.1\r\nHost: a\r\n\r\n".encode()
    )
    assert answer.endswith(b"upstream") and answer.startswith(b"HTTP/1.1 200")
    assert upstream.received.startswith(b"GET /x HTTP/1.1\r\n")
    [event] = events
    assert (event.host, event.port, event.verdict) == (
        "localhost",
        upstream.port,
        EgressVerdict.ALLOWED,
    )
    assert event.address in {"127.0.0.1", "::ffff:127.0.0.1"}
    assert event.bytes_sent == len(upstream.received)
    assert event.bytes_received == len(answer)
    assert event.started_at <= event.ended_at

    proxy, events = recording([f"localhost:{upstream.port}"], policy)
    tunnel = await through(
        proxy, f"CONNECT localhost:{upstream.port} HTTP/1.1\r\n\r\nHELLO".encode()
    )
    assert tunnel.startswith(b"HTTP/1.1 200 Connection established\r\n\r\n")
    assert tunnel.endswith(b"upstream")
    assert events[0].verdict is EgressVerdict.ALLOWED and events[0].bytes_sent == 5


async def test_the_name_is_resolved_once_and_the_checked_address_is_the_one_connected(upstream):
    """A rebinding DNS server answers differently on every lookup: the proxy looks up once,
    drops forbidden answers, and connects to the permitted address it checked."""
    policy = AddressPolicy(parse_address_allowances(["127.0.0.1"], "X"), own_addresses=set)
    answers = [
        [ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1")],
        [ipaddress.ip_address("127.0.0.2")],
    ]
    lookups: list[str] = []

    async def rebinding(host: str, port: int):
        lookups.append(host)
        return answers[min(len(lookups), len(answers)) - 1]

    proxy, events = recording([f"rebind.example:{upstream.port}"], policy, rebinding)
    answer = await through(
        proxy, f"CONNECT rebind.example:{upstream.port} HTTP/1.1\r\n\r\nHELLO".encode()
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert lookups == ["rebind.example"]
    assert events[0].address == "127.0.0.1" and upstream.connections == 1

    # The next lookup answers only a forbidden address: refused, nothing reached.
    proxy, events = recording([f"rebind.example:{upstream.port}"], policy, rebinding)
    answer = await through(
        proxy, f"CONNECT rebind.example:{upstream.port} HTTP/1.1\r\n\r\nHELLO".encode()
    )
    assert answer.startswith(b"HTTP/1.1 403")
    assert events[0].verdict is EgressVerdict.FORBIDDEN_ADDRESS and upstream.connections == 1


async def test_refusals_are_logged_with_their_verdicts(upstream):
    async def nowhere(host: str, port: int):
        raise OSError("no such name")

    proxy, events = recording(["api.example.org:443", "gone.example:443"], resolve=nowhere)
    assert (await through(proxy, b"CONNECT other.example:443 HTTP/1.1\r\n\r\n")).startswith(
        b"HTTP/1.1 403"
    )
    assert (await through(proxy, b"CONNECT gone.example:443 HTTP/1.1\r\n\r\n")).startswith(
        b"HTTP/1.1 502"
    )
    assert (await through(proxy, b"CONNECT api.example.org:0 HTTP/1.1\r\n\r\n")).startswith(
        b"HTTP/1.1 400"
    )
    assert [(e.host, e.verdict) for e in events] == [
        ("other.example", EgressVerdict.NOT_ALLOWLISTED),
        ("gone.example", EgressVerdict.UNREACHABLE),
        ("api.example.org", EgressVerdict.BAD_HOST),
    ]
