"""Every RPC in protos/ is covered: a Python client method, a TypeScript client method, and an
idempotency decision. A new RPC fails here until each is added or exempted with a reason."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from mleb import client as python_client
from mleb.channels import IDEMPOTENT_METHODS
from mleb.grader.v1 import grader_service_pb2
from mleb.idempotency import DECISIONS, KINDS, kind_of
from mleb.registry.v1 import registry_service_pb2
from mleb.sandbox.v1 import sandbox_service_pb2

ROOT = Path(__file__).resolve().parents[3]
TS_CLIENT = ROOT / "clients" / "typescript" / "src" / "client.ts"

# The client attribute (Python) or stub accessor (TypeScript) that reaches each service.
SERVICES = {
    "registry": registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"],
    "grader": grader_service_pb2.DESCRIPTOR.services_by_name["GraderService"],
    "sandbox": sandbox_service_pb2.DESCRIPTOR.services_by_name["SandboxService"],
}

# Service-to-service internals that neither client wraps: only a token with the service role
# may call them, and the servers call them through their own code in services/. A lab that
# needs one anyway has the generated stubs.
EXEMPT: dict[str, str] = {
    # The private answers; only the grader reads them (services/grader/registry_bundles.py).
    # A client method would invite labs to try for the answers.
    "GetGradingBundle": "internal: the grader fetches the private answers; service role only",
    # Every server polls the list for its token cache (services/common/revocation.py).
    "ListRevokedTokens": "internal: servers refresh their revocation cache; service role only",
    # The grader and sandbox service write the chain (services/common/audit_client.py). Labs
    # read it through ExportAuditChain instead.
    "AppendAuditEvents": "internal: servers write the audit chain; service role only",
}

# The one rule beyond the plain case conversion: ListPublicKeys exists in two services, and
# one client reaches both, so each client names the method after the service it asks.
RENAMED: dict[tuple[str, str], str] = {
    ("grader", "ListPublicKeys"): "ListGraderKeys",
    ("sandbox", "ListPublicKeys"): "ListSandboxKeys",
}

RPCS = [(service, method.name) for service, desc in SERVICES.items() for method in desc.methods]
RPC_NAMES = {name for _service, name in RPCS}


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def lower_camel(name: str) -> str:
    return name[0].lower() + name[1:]


def client_name(service: str, rpc: str) -> str:
    return RENAMED.get((service, rpc), rpc)


def ts_methods(source: str) -> dict[str, str]:
    """Public methods of `class MlebClient`, name -> body (up to the next member)."""
    body = source.split("export class MlebClient", 1)[1]
    pattern = re.compile(r"^  (?:async \*|async )?([a-z]\w*)(?:<[^>\n]*>)?\(", re.MULTILINE)
    matches = list(pattern.finditer(body))
    return {
        match.group(1): body[match.end() : following.start() if following else len(body)]
        for match, following in zip(matches, [*matches[1:], None], strict=True)
    }


TS_METHODS = ts_methods(TS_CLIENT.read_text())


def test_the_generated_descriptors_match_the_protos() -> None:
    """The descriptors this test reads are the protos' RPCs, not a stale generation."""
    in_protos = set()
    for proto in (ROOT / "protos" / "mleb").glob("*/v1/*_service.proto"):
        in_protos |= set(re.findall(r"^\s*rpc\s+(\w+)\s*\(", proto.read_text(), re.MULTILINE))
    assert in_protos == RPC_NAMES


def test_the_exemptions_and_renames_name_real_rpcs() -> None:
    assert set(EXEMPT) <= RPC_NAMES
    assert set(RENAMED) <= set(RPCS)


@pytest.mark.parametrize(("service", "rpc"), RPCS, ids=[f"{s}.{r}" for s, r in RPCS])
def test_the_python_client_has_a_method(service: str, rpc: str) -> None:
    name = snake_case(client_name(service, rpc))
    method = getattr(python_client._Calls, name, None)
    if rpc in EXEMPT:
        assert method is None, f"{rpc} is exempt but the Python client has {name}: drop it"
        return
    assert method is not None, f"the Python client has no {name} for {service} {rpc}"
    # ... and it calls that RPC on that service's stub.
    assert f"self.{service}.{rpc}," in inspect.getsource(method)


@pytest.mark.parametrize(("service", "rpc"), RPCS, ids=[f"{s}.{r}" for s, r in RPCS])
def test_the_typescript_client_has_a_method(service: str, rpc: str) -> None:
    name = lower_camel(client_name(service, rpc))
    if rpc in EXEMPT:
        assert name not in TS_METHODS, f"{rpc} is exempt but client.ts has {name}: drop it"
        return
    assert name in TS_METHODS, f"clients/typescript/src/client.ts has no {name} for {rpc}"
    # ... and it calls that RPC on that service's stub: `grader.rankScore.bind(grader)` or
    # `this.sandbox().streamLogs(`.
    call = re.compile(rf"\b{service}(?:\(\))?\.{lower_camel(rpc)}\b")
    assert call.search(TS_METHODS[name]), f"{name} does not call {service} {rpc}"


def test_every_rpc_has_an_idempotency_decision() -> None:
    missing = RPC_NAMES - set(DECISIONS)
    unknown = set(DECISIONS) - RPC_NAMES
    assert not missing, f"decide whether these are safe to retry in mleb/idempotency.py: {missing}"
    assert not unknown, f"mleb/idempotency.py names RPCs that do not exist: {unknown}"
    for rpc, decision in DECISIONS.items():
        assert decision.split(":")[0] in KINDS, f"{rpc}: {decision!r} starts with none of {KINDS}"


def test_only_safe_rpcs_are_retried_automatically() -> None:
    """The channels retry on UNAVAILABLE only what the decisions call safe to repeat."""
    for methods in IDEMPOTENT_METHODS.values():
        for rpc in methods:
            assert kind_of(rpc) in ("read-only", "idempotent"), rpc
