"""Allowlist egress from real Docker sandboxes: allowlisting this host's names and addresses
does not reach them, and what the proxy did lands in the sandbox record."""

from __future__ import annotations

import json

import pytest
from mleb.sandbox.v1 import sandbox_pb2

from services.sandbox.backends.base import NetworkMode
from services.sandbox.node.egress_proxy import EgressEvent, EgressVerdict
from tests.integration.sandbox.test_isolation_docker import (  # noqa: F401 (fixtures)
    PYTHON_IMAGE,
    _bridge_gateway,
    host_server,
    rig,
)

pytestmark = pytest.mark.docker
S = sandbox_pb2

# Sends each raw request line to the egress proxy and reports everything it answered.
PROXY_PROBE_AGENT = r"""
import json, socket, sys
out = {}
for name, line in json.loads(sys.argv[1]).items():
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall((line + "\r\nHost: x\r\n\r\n").encode())
    chunks = []
    while data := s.recv(65536):
        chunks.append(data)
    out[name] = b"".join(chunks).decode(errors="replace")
    s.close()
print("RESULT=" + json.dumps(out), flush=True)
"""


class RecordedEgress:
    """Stands in for the database-backed EgressLog."""

    def __init__(self) -> None:
        self.events: list[EgressEvent] = []

    def record(self, sandbox_id: str, event: EgressEvent) -> None:
        self.events.append(event)

    async def flush(self, sandbox_id: str) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_allowlisting_this_hosts_names_and_addresses_reaches_none_of_them(
    rig,  # noqa: F811
    host_server,  # noqa: F811
):
    gateway = _bridge_gateway(rig.engine)
    local = host_server("loopback service")
    bridged = host_server("bridge service", bind=gateway)
    egress = RecordedEgress()
    rig.allow_addresses([], egress)  # the default: no operator allowances
    allowed_hosts = [
        f"localhost:{local}",
        f"0.0.0.0:{local}",
        f"[::ffff:127.0.0.1]:{local}",
        f"[::]:{local}",
        f"{gateway}:{bridged}",
    ]
    # Straight to the proxy, as a hostile agent would (curl skips it for NO_PROXY names).
    probes = {
        "get_localhost": f"GET http://localhost:{local}/ HTTP/1.1",
        "get_localhost_dot_upper": f"GET http://LOCALHOST.:{local}/ HTTP/1.1",
        "get_mapped": f"GET http://[::ffff:127.0.0.1]:{local}/ HTTP/1.1",
        "get_zero": f"GET http://0.0.0.0:{local}/ HTTP/1.1",
        "get_gateway": f"GET http://{gateway}:{bridged}/ HTTP/1.1",
        "connect_localhost": f"CONNECT localhost:{local} HTTP/1.1",
        "connect_zero": f"CONNECT 0.0.0.0:{local} HTTP/1.1",
        "connect_any6": f"CONNECT [::]:{local} HTTP/1.1",
        "connect_gateway": f"CONNECT {gateway}:{bridged} HTTP/1.1",
        "connect_shorthand": f"CONNECT 127.1:{local} HTTP/1.1",
        "connect_decimal": f"CONNECT 2130706433:{local} HTTP/1.1",
    }
    run = await rig.run(
        PYTHON_IMAGE,
        ["python3", "-c", PROXY_PROBE_AGENT, json.dumps(probes)],
        network=NetworkMode.ALLOWLIST,
        allowed_hosts=allowed_hosts,
    )
    result = run.result()
    for name, answer in result.items():
        expected = "400" if name in {"connect_shorthand", "connect_decimal"} else "403"
        assert answer.split(" ")[1:2] == [expected], (name, answer)
        assert "service" not in answer
    verdicts = [e.verdict for e in egress.events]
    assert EgressVerdict.ALLOWED not in verdicts
    assert verdicts.count(EgressVerdict.FORBIDDEN_ADDRESS) == 9
    assert verdicts.count(EgressVerdict.BAD_HOST) == 2


async def test_the_egress_log_is_part_of_the_sandbox_record(
    engine,
    docker_stack,
    host_server,  # noqa: F811
):
    """Through the service: the operator allows the bridge gateway; the record lists the
    allowed destination with its bytes and the refused one, after the sandbox ends."""
    gateway = _bridge_gateway(engine)
    bridged = host_server("bridge service", bind=gateway)
    local = host_server("loopback service")
    _server, stub = await docker_stack.start(egress_allow_addresses=(gateway,))
    probes = {
        "gateway": f"GET http://{gateway}:{bridged}/ HTTP/1.1",
        "localhost": f"CONNECT localhost:{local} HTTP/1.1",
    }
    sandbox = await docker_stack.create(
        stub,
        ["python3", "-c", PROXY_PROBE_AGENT, json.dumps(probes)],
        image=PYTHON_IMAGE,
        network=S.NetworkPolicy(
            mode=S.NETWORK_MODE_ALLOWLIST,
            allowed_hosts=[f"{gateway}:{bridged}", f"localhost:{local}"],
        ),
    )
    done = await docker_stack.wait_for(stub, sandbox.id, timeout=120)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    by_host = {d.host: d for d in done.egress}
    reached = by_host[gateway]
    assert reached.verdict == S.EGRESS_VERDICT_ALLOWED and reached.address == gateway
    assert reached.port == bridged and reached.connections == 1
    assert reached.bytes_sent > 0 and reached.bytes_received > len("bridge service")
    assert reached.last_at.ToNanoseconds() >= reached.first_at.ToNanoseconds() > 0
    refused = by_host["localhost"]
    assert refused.verdict == S.EGRESS_VERDICT_FORBIDDEN_ADDRESS and refused.address == ""
    assert (refused.bytes_sent, refused.bytes_received) == (0, 0)
    assert done.egress_omitted_connections == 0
