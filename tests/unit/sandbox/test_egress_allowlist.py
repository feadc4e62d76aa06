"""The egress allowlist: what an entry means, and which entries are refused."""

from __future__ import annotations

import pytest

from services.common.auth import Role, TokenAuthority
from services.common.errors import InvalidArgumentError
from services.sandbox.node.egress_proxy import EgressProxy, parse_allowlist, split_host_port
from services.sandbox.node.endpoints import token_competition
from tests.conftest import TEST_AUTH_SECRET


def test_host_port_forms():
    assert split_host_port("API.OpenAI.com") == ("api.openai.com", None)
    assert split_host_port("example.org:8443") == ("example.org", 8443)
    assert split_host_port("[::1]:443") == ("::1", 443)
    with pytest.raises(ValueError):
        split_host_port("host:https")


def test_rules_match_host_port_and_subdomains_only():
    proxy = EgressProxy("s", parse_allowlist(["api.openai.com", "10.0.0.5:8080", "*.hf.co"]))
    assert proxy.allows("api.openai.com", 443) and proxy.allows("api.openai.com", 80)
    assert proxy.allows("10.0.0.5", 8080) and not proxy.allows("10.0.0.5", 8081)
    assert proxy.allows("cdn.hf.co", 443) and not proxy.allows("hf.co", 443)
    assert not proxy.allows("evil-api.openai.com", 443)
    assert not proxy.allows("api.openai.com.evil.net", 443)


@pytest.mark.parametrize("entry", ["", "a/b", "*", "x.*.com", "h:port"])
def test_bad_entries_are_invalid_argument_naming_the_entry(entry):
    with pytest.raises(InvalidArgumentError) as err:
        parse_allowlist(["ok.example", entry])
    assert err.value.violations[0].field == "allowed_hosts[1]"


def test_the_endpoints_route_by_the_tokens_competition():
    authority = TokenAuthority.from_spec(TEST_AUTH_SECRET)
    token = authority.issue(Role.SANDBOX, "a", sandbox_id="s", competition_id="spaceship-titanic")
    assert token_competition(token) == "spaceship-titanic"
    with pytest.raises(InvalidArgumentError):
        token_competition(authority.issue(Role.LAB, "lab"))
