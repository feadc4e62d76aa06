"""The allowlist egress proxy a sandbox is forced through (network mode allowlist).

It speaks plain HTTP proxying: CONNECT host:port for HTTPS (then relays bytes, so TLS stays
end to end) and absolute-URI requests for plain HTTP. It runs on the host, so names resolve
and connect from the host, which is why a name being on the allowlist is not enough:

- the host must be a plain DNS name or a strict IP literal (no numeric shorthand such as
  `127.1`, `0x7f.1` or `2130706433`, no IPv6 zone ids);
- the host and port must be on the sandbox's allowlist;
- every address the name resolves to is checked, and only permitted ones are used: never
  loopback, link-local, private, shared (CGNAT), multicast, unspecified, reserved, nor any
  of the host's own addresses, unless the operator allows that address
  (MLEB_SANDBOX_EGRESS_ALLOW_ADDRESSES);
- the proxy connects to the exact address it checked: the name is resolved once, so a DNS
  answer that changes in between (rebinding) cannot redirect the connection.

Every decision becomes an EgressEvent (host, port, address, verdict, bytes each way, times),
handed to the sandbox's egress log.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import math
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from services.common.errors import invalid_field
from services.sandbox.node.relay import relay

log = structlog.get_logger("mleb.sandbox.egress")

_MAX_HEAD_BYTES = 64 * 1024
_CONNECT_TIMEOUT_S = 10.0
_RESOLVE_TIMEOUT_S = 10.0
_HOP_BY_HOP = {"proxy-connection", "proxy-authorization", "connection", "keep-alive"}
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
# A last label like these makes resolvers read the name as an IPv4 number (127.1, 0x7f.1,
# 2130706433, 0177.0.0.1): no real top-level domain looks like this.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
# NAT64 prefixes embed an IPv4 address that the gateway then reaches.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_OWN_ADDRESSES_TTL_S = 5.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressVerdict(enum.StrEnum):
    ALLOWED = "ALLOWED"
    NOT_ALLOWLISTED = "NOT_ALLOWLISTED"
    FORBIDDEN_ADDRESS = "FORBIDDEN_ADDRESS"
    BAD_HOST = "BAD_HOST"
    UNREACHABLE = "UNREACHABLE"


@dataclass(frozen=True)
class EgressEvent:
    """One connection the proxy handled (or refused)."""

    host: str
    port: int
    address: str
    verdict: EgressVerdict
    bytes_sent: int
    bytes_received: int
    started_at: float
    ended_at: float


@dataclass
class EgressSum:
    connections: int
    bytes_sent: int
    bytes_received: int
    first_at: float
    last_at: float


class EgressSums:
    """Events summed per destination and verdict, at most `max_destinations` of them;
    connections to destinations past that are only counted (`omitted`)."""

    def __init__(self, max_destinations: int) -> None:
        self.max_destinations = max_destinations
        self.sums: dict[tuple[str, int, str, str], EgressSum] = {}
        self.omitted = 0

    def add(self, e: EgressEvent) -> None:
        key = (e.host[:512], e.port, e.address, e.verdict.value)
        total = self.sums.get(key)
        if total is None:
            if len(self.sums) >= self.max_destinations:
                self.omitted += 1
                return
            total = self.sums[key] = EgressSum(0, 0, 0, e.started_at, e.ended_at)
        total.connections += 1
        total.bytes_sent += e.bytes_sent
        total.bytes_received += e.bytes_received
        total.first_at = min(total.first_at, e.started_at)
        total.last_at = max(total.last_at, e.ended_at)

    def to_json(self) -> dict[str, object]:
        return {
            "max_destinations": self.max_destinations,
            "omitted": self.omitted,
            "sums": [[*key, *vars(total).values()] for key, total in self.sums.items()],
        }

    @classmethod
    def from_json(cls, raw: dict) -> EgressSums:
        """Sums written by to_json; anything else is a ValueError."""
        try:
            sums = cls(int(raw["max_destinations"]))
            sums.omitted = int(raw["omitted"])
            for host, port, address, verdict, *numbers in raw["sums"][: sums.max_destinations]:
                EgressVerdict(verdict)  # a known verdict, or ValueError
                key = (str(host)[:512], int(port), str(address)[:64], str(verdict))
                n, sent, received, first, last = (float(x) for x in numbers)
                if not all(map(math.isfinite, (n, sent, received, first, last))):
                    raise ValueError("a sum is not a finite number")
                sums.sums[key] = EgressSum(int(n), int(sent), int(received), first, last)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"not an egress log: {type(exc).__name__}: {exc}") from exc
        return sums


class BadHost(ValueError):
    """The target is not a usable host or port."""


def split_host_port(text: str) -> tuple[str, int | None]:
    """'host', 'host:443', '[::1]:443' -> (host, port or None), host lower-cased."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if port and not port.isdigit():
        raise ValueError(f"bad port in {text!r}")
    return host.lower().rstrip("."), int(port) if port else None


def canonical_host(host: str) -> str:
    """A host as the proxy compares and resolves it: a strict IP literal in its canonical
    spelling, or a plain DNS name. Raises BadHost for anything a resolver might read
    differently (numeric shorthand, zone ids, odd characters)."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.rstrip(".")
    if not host:
        raise BadHost("empty host")
    if "%" in host:
        raise BadHost("IPv6 zone ids are not allowed")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise BadHost(f"{host[:80]!r} is not a host name")
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        raise BadHost(f"{host!r} is numeric shorthand for an address; write the address")
    return host


def _checked_port(port: int | None, default: int) -> int:
    port = default if port is None else port
    if not 0 < port < 65536:
        raise BadHost(f"port {port} is out of range")
    return port


@dataclass(frozen=True)
class AllowRule:
    host: str
    port: int | None  # None: any port
    subdomains: bool  # "*.example.com" matches below example.com, not example.com itself

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.subdomains:
            return host.endswith("." + self.host)
        return host == self.host


def parse_allowlist(entries: list[str]) -> list[AllowRule]:
    """Entries are 'host', 'host:port' or '*.domain[:port]'."""
    rules = []
    for index, entry in enumerate(entries):
        field = f"allowed_hosts[{index}]"
        wildcard = entry.strip().startswith("*.")
        try:
            host, port = split_host_port(entry.strip().removeprefix("*."))
        except ValueError as exc:
            raise invalid_field(field, str(exc)) from exc
        if not host or "/" in host or "*" in host:
            raise invalid_field(field, "expected host, host:port or *.domain")
        try:
            host = canonical_host(host)
            if port is not None:
                _checked_port(port, 0)
        except BadHost as exc:
            raise invalid_field(field, str(exc)) from exc
        if wildcard and _is_ip(host):
            raise invalid_field(field, "a wildcard needs a domain, not an address")
        rules.append(AllowRule(host, port, wildcard))
    return rules


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_address_allowances(entries: Iterable[str], source: str) -> list[Network]:
    """Addresses or CIDR networks ('172.17.0.1', '10.8.0.0/16', 'fd00::/8') the operator lets
    sandboxes reach although they are local or private."""
    networks: list[Network] = []
    for entry in filter(None, (e.strip() for e in entries)):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise invalid_field(source, f"{entry!r} is not an address or network") from exc
    return networks


def host_addresses() -> set[Address]:
    """Every address of this host's network namespace (Linux /proc; empty elsewhere)."""
    found: set[Address] = set()
    with contextlib.suppress(OSError):
        last = ""
        for line in Path("/proc/net/fib_trie").read_text().splitlines():
            text = line.strip()
            if text.startswith("|--"):
                last = text[3:].strip()
            elif text.endswith("host LOCAL") and last:
                with contextlib.suppress(ValueError):
                    found.add(ipaddress.ip_address(last))
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = line.split()[0] if line.split() else ""
            if len(raw) == 32:
                with contextlib.suppress(ValueError):
                    found.add(ipaddress.IPv6Address(int(raw, 16)))
    return found


class AddressPolicy:
    """Which resolved addresses the proxy may connect to."""

    def __init__(
        self,
        allowed: Sequence[Network] = (),
        own_addresses: Callable[[], set[Address]] = host_addresses,
    ) -> None:
        self._allowed = list(allowed)
        self._own_addresses = own_addresses
        self._own: set[Address] = set()
        self._own_read_at = float("-inf")

    def _host_owns(self, address: Address) -> bool:
        now = time.monotonic()
        if now - self._own_read_at > _OWN_ADDRESSES_TTL_S:
            self._own = self._own_addresses()
            self._own_read_at = now
        return address in self._own

    def refusal(self, address: Address) -> str | None:
        """Why the proxy must not connect to `address`, or None when it may."""
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                candidates.append(address.ipv4_mapped)
            elif address in _NAT64:
                candidates.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(c in network for c in candidates for network in self._allowed):
            return None
        for candidate in candidates:
            for reason, hit in (
                ("loopback", candidate.is_loopback),
                ("unspecified", candidate.is_unspecified),
                ("link-local", candidate.is_link_local),
                ("multicast", candidate.is_multicast),
                ("reserved", candidate.is_reserved),
                ("private", candidate.is_private),
                ("not globally routable", not candidate.is_global),
            ):
                if hit:
                    return reason
            if self._host_owns(candidate):
                return "one of this host's own addresses"
        return None


class EgressProxy:
    """Serves one sandbox's proxy connections against its allowlist."""

    def __init__(
        self,
        sandbox_id: str,
        allowed: list[AllowRule],
        policy: AddressPolicy | None = None,
        on_event: Callable[[EgressEvent], None] | None = None,
        resolve: Callable[[str, int], Awaitable[list[Address]]] | None = None,
    ) -> None:
        self._sandbox_id = sandbox_id
        self._allowed = allowed
        self._policy = policy or AddressPolicy()
        self._on_event = on_event
        # Tests substitute a resolver to play a rebinding DNS server.
        self._resolve: Callable[[str, int], Awaitable[list[Address]]] = resolve or _resolve
        self._writers: set[asyncio.StreamWriter] = set()

    def allows(self, host: str, port: int) -> bool:
        return any(rule.matches(host, port) for rule in self._allowed)

    def close(self) -> None:
        """Drops every open connection, both sides."""
        for writer in list(self._writers):
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                writer.close()
                return
            try:
                await self._proxy(head, reader, writer)
            except (ConnectionError, OSError):
                writer.close()
        finally:
            self._writers.discard(writer)

    def _record(self, event: EgressEvent) -> None:
        log.info(
            "egress",
            sandbox_id=self._sandbox_id,
            host=event.host,
            port=event.port,
            address=event.address,
            verdict=event.verdict.value,
            bytes_sent=event.bytes_sent,
            bytes_received=event.bytes_received,
        )
        if self._on_event is not None:
            self._on_event(event)

    async def _refuse(
        self,
        writer: asyncio.StreamWriter,
        host: str,
        port: int,
        verdict: EgressVerdict,
        status: int,
        message: str,
        started: float,
    ) -> None:
        self._record(EgressEvent(host, port, "", verdict, 0, 0, started, time.time()))
        await _reply(writer, status, message)

    async def _proxy(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        started = time.time()
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return await _reply(writer, 400, "malformed request line")
        method, target, version = parts
        try:
            if method == "CONNECT":
                raw_host, raw_port = split_host_port(target)
                path = ""
            else:
                url = urlsplit(target)
                if url.scheme != "http" or not url.hostname:
                    return await _reply(
                        writer, 400, "use an absolute http:// URL, or CONNECT for HTTPS"
                    )
                raw_host, raw_port = url.hostname, url.port
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        except ValueError:
            return await self._refuse(
                writer, target[:255], 0, EgressVerdict.BAD_HOST, 400, "malformed target", started
            )
        try:
            host = canonical_host(raw_host)
            port = _checked_port(raw_port, 443 if method == "CONNECT" else 80)
        except BadHost as exc:
            return await self._refuse(
                writer,
                raw_host[:255],
                raw_port or 0,
                EgressVerdict.BAD_HOST,
                400,
                str(exc),
                started,
            )
        if not self.allows(host, port):
            return await self._refuse(
                writer,
                host,
                port,
                EgressVerdict.NOT_ALLOWLISTED,
                403,
                f"{host}:{port} is not on this sandbox's allowlist",
                started,
            )
        try:
            addresses = await asyncio.wait_for(self._resolve(host, port), _RESOLVE_TIMEOUT_S)
        except (OSError, TimeoutError, UnicodeError):
            return await self._refuse(
                writer,
                host,
                port,
                EgressVerdict.UNREACHABLE,
                502,
                f"cannot resolve {host}",
                started,
            )
        permitted = [a for a in addresses if self._policy.refusal(a) is None]
        if not permitted:
            why = self._policy.refusal(addresses[0]) if addresses else "no address"
            return await self._refuse(
                writer,
                host,
                port,
                EgressVerdict.FORBIDDEN_ADDRESS,
                403,
                f"{host}:{port} resolves to a forbidden address ({why})",
                started,
            )
        connected = await _connect_checked(permitted, port)
        if connected is None:
            return await self._refuse(
                writer,
                host,
                port,
                EgressVerdict.UNREACHABLE,
                502,
                f"cannot reach {host}:{port}",
                started,
            )
        address, (up_reader, up_writer) = connected
        self._writers.add(up_writer)
        counts = [0, 0]  # sent by the sandbox, received by it
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                # One request per connection: a keep-alive client could otherwise send its
                # next request, to another host, down this host's connection.
                headers = [h for h in lines[1:] if h and h.split(":")[0].lower() not in _HOP_BY_HOP]
                request = [f"{method} {path} {version}", *headers, "Connection: close", "", ""]
                data = "\r\n".join(request).encode("latin-1")
                counts[0] += len(data)
                up_writer.write(data)
            await relay((reader, writer), (up_reader, up_writer), counts)
        finally:
            self._writers.discard(up_writer)
            self._record(
                EgressEvent(
                    host,
                    port,
                    str(address),
                    EgressVerdict.ALLOWED,
                    counts[0],
                    counts[1],
                    started,
                    time.time(),
                )
            )


async def _resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to, resolved once; IP literals are not looked up."""
    with contextlib.suppress(ValueError):
        return [ipaddress.ip_address(host)]
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    found: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(str(sockaddr[0]))
            if address not in found:
                found.append(address)
    return found


async def _connect_checked(
    addresses: list[Address], port: int
) -> tuple[Address, tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None:
    """Connects to the first address that answers, by number: nothing is resolved again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _CONNECT_TIMEOUT_S
    for address in addresses:
        target = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        address = target or address
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            remaining = max(0.1, deadline - loop.time())
            await asyncio.wait_for(loop.sock_connect(sock, (str(address), port)), remaining)
            streams = await asyncio.open_connection(sock=sock, limit=_MAX_HEAD_BYTES)
        except (OSError, TimeoutError):
            sock.close()
            continue
        return address, streams
    return None


async def _reply(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reasons = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}
    body = (message + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {reasons[status]}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
    writer.close()
