"""The allowlist egress proxy a sandbox is forced through (network mode allowlist).

It speaks plain HTTP proxying: CONNECT host:port for HTTPS (then relays bytes, so TLS stays
end to end) and absolute-URI requests for plain HTTP. Only listed hosts are reached; others
get 403. It runs on the host, so names resolve and connect from the host.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog

from services.common.errors import invalid_field
from services.sandbox.relay import relay

log = structlog.get_logger("mleb.sandbox.egress")

_MAX_HEAD_BYTES = 64 * 1024
_CONNECT_TIMEOUT_S = 10.0
_HOP_BY_HOP = {"proxy-connection", "proxy-authorization", "connection", "keep-alive"}


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
        wildcard = entry.strip().startswith("*.")
        try:
            host, port = split_host_port(entry.strip().removeprefix("*."))
        except ValueError as exc:
            raise invalid_field(f"allowed_hosts[{index}]", str(exc)) from exc
        if not host or "/" in host or "*" in host:
            raise invalid_field(f"allowed_hosts[{index}]", "expected host, host:port or *.domain")
        rules.append(AllowRule(host, port, wildcard))
    return rules


class EgressProxy:
    """Serves one sandbox's proxy connections against its allowlist."""

    def __init__(self, sandbox_id: str, allowed: list[AllowRule]) -> None:
        self._sandbox_id = sandbox_id
        self._allowed = allowed

    def allows(self, host: str, port: int) -> bool:
        return any(rule.matches(host, port) for rule in self._allowed)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        try:
            await self._proxy(head, reader, writer)
        except (ConnectionError, OSError):
            writer.close()

    async def _proxy(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return await _reply(writer, 400, "malformed request line")
        method, target, version = parts
        try:
            if method == "CONNECT":
                host, port = split_host_port(target)
                path = ""
            else:
                url = urlsplit(target)
                if url.scheme != "http" or not url.hostname:
                    return await _reply(
                        writer, 400, "use an absolute http:// URL, or CONNECT for HTTPS"
                    )
                host, port = url.hostname.lower(), url.port
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        except ValueError:
            return await _reply(writer, 400, "malformed target")
        port = port or (443 if method == "CONNECT" else 80)
        if not self.allows(host, port):
            log.info("egress refused", sandbox_id=self._sandbox_id, host=host, port=port)
            return await _reply(writer, 403, f"{host}:{port} is not on this sandbox's allowlist")
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=_MAX_HEAD_BYTES), _CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            return await _reply(writer, 502, f"cannot reach {host}:{port}")
        log.info("egress allowed", sandbox_id=self._sandbox_id, host=host, port=port)
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            # One request per connection: a keep-alive client could otherwise send its next
            # request, to another host, down this host's connection.
            headers = [h for h in lines[1:] if h and h.split(":")[0].lower() not in _HOP_BY_HOP]
            request = [f"{method} {path} {version}", *headers, "Connection: close", "", ""]
            upstream[1].write("\r\n".join(request).encode("latin-1"))
        await relay((reader, writer), upstream)


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
