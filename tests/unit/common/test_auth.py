import time

import jwt
import pytest

from services.common.auth import (
    Caller,
    Role,
    TokenAuthority,
    parse_keys,
    require_competition_access,
)
from services.common.errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    UnauthenticatedError,
)

OLD = "old:" + "o" * 32
NEW = "new:" + "n" * 32


def test_round_trip_keeps_role_subject_and_sandbox_claims():
    authority = TokenAuthority.from_spec(NEW)
    token = authority.issue(Role.SANDBOX, "agent", sandbox_id="sbx-1", competition_id="comp-a")
    caller = authority.verify(token)
    assert caller == Caller(
        Role.SANDBOX,
        "agent",
        sandbox_id="sbx-1",
        competition_id="comp-a",
        expires_at=None,
        token_id=caller.token_id,
    )
    assert len(caller.token_id) == 32  # every token has an id (jti) that revocation names


def test_a_lab_token_without_an_id_is_refused():
    import jwt

    secret = NEW.split(":", 1)[1].encode()
    claims = {"iss": "mleb", "sub": "lab", "role": "lab", "iat": 1}
    token = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "new"})
    with pytest.raises(UnauthenticatedError):
        TokenAuthority.from_spec(NEW).verify(token)


def test_rotation_old_tokens_verify_while_their_key_is_listed():
    old_token = TokenAuthority.from_spec(OLD).issue(Role.LAB, "lab")
    rotated = TokenAuthority.from_spec(f"{NEW},{OLD}")
    assert rotated.verify(old_token).role is Role.LAB
    # New tokens are signed with the first key.
    assert jwt.get_unverified_header(rotated.issue(Role.LAB, "lab"))["kid"] == "new"
    with pytest.raises(UnauthenticatedError) as err:
        TokenAuthority.from_spec(NEW).verify(old_token)
    assert err.value.reason == "UNKNOWN_KEY"


def test_expired_token_is_refused():
    authority = TokenAuthority.from_spec(NEW)
    token = authority.issue(Role.LAB, "lab", ttl_s=-5)
    with pytest.raises(UnauthenticatedError) as err:
        authority.verify(token)
    assert err.value.reason == "TOKEN_EXPIRED"


def test_tampered_and_foreign_tokens_are_refused():
    authority = TokenAuthority.from_spec(NEW)
    token = authority.issue(Role.LAB, "lab")
    head, payload, sig = token.split(".")
    forged = jwt.encode(
        {"iss": "mleb", "sub": "x", "role": "service", "iat": int(time.time())},
        "n" * 32 + "different",
        algorithm="HS256",
        headers={"kid": "new"},
    )
    for bad in (f"{head}.{payload}.{sig[:-2]}AA", forged, "not-a-token", ""):
        with pytest.raises(UnauthenticatedError):
            authority.verify(bad)


def test_sandbox_tokens_need_their_sandbox():
    authority = TokenAuthority.from_spec(NEW)
    with pytest.raises(InvalidArgumentError):
        authority.issue(Role.SANDBOX, "agent")


@pytest.mark.parametrize("spec", ["nokid", "k:", ":secret", "k:short"])
def test_bad_key_specs_are_refused(spec):
    with pytest.raises(InvalidArgumentError):
        parse_keys(spec)


def test_sandbox_caller_reaches_only_its_competition():
    sandbox = Caller(Role.SANDBOX, "agent", sandbox_id="s", competition_id="a")
    require_competition_access(sandbox, "a")
    with pytest.raises(PermissionDeniedError):
        require_competition_access(sandbox, "b")
    require_competition_access(Caller(Role.LAB, "lab"), "b")
