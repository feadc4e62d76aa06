"""Signing keys and DSSE envelopes. One envelope is checked from the DSSE and in-toto specs with
`cryptography` alone, so a verifier written elsewhere accepts what mleb signs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from mleb.evidence.keys import generate_key

from services.common.errors import FailedPreconditionError
from services.common.signing import load_key_dir


def _spec_pae(payload_type: bytes, payload: bytes) -> bytes:
    # DSSE v1: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal.
    return b" ".join([b"DSSEv1", str(len(payload_type)).encode(), payload_type,
                      str(len(payload)).encode(), payload])  # fmt: skip


def test_an_envelope_verifies_from_the_specs_alone(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    generate_key(keys_dir, "2026-12")
    keys = load_key_dir(keys_dir)
    text = keys.sign_statement({"submission.csv": "ab" * 32}, "https://example/p", {"x": 1})
    envelope = json.loads(text)
    assert set(envelope) == {"payloadType", "payload", "signatures"}
    payload = base64.b64decode(envelope["payload"])
    (signature,) = envelope["signatures"]
    keyid, pem = keys.public_keys()[0]
    public = load_pem_public_key(pem.encode())
    raw = public.public_bytes_raw()
    assert signature["keyid"] == keyid == hashlib.sha256(raw).hexdigest()
    public.verify(
        base64.b64decode(signature["sig"]),
        _spec_pae(envelope["payloadType"].encode(), payload),
    )
    statement = json.loads(payload)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "submission.csv", "digest": {"sha256": "ab" * 32}}]
    assert statement["predicateType"] == "https://example/p" and statement["predicate"] == {"x": 1}


def test_rotation_signs_with_the_newest_and_publishes_every_key(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    old = generate_key(keys_dir, "2026-01")
    new = generate_key(keys_dir, "2026-06")
    keys = load_key_dir(keys_dir)
    assert keys.active_keyid == new and {k for k, _ in keys.public_keys()} == {old, new}
    # Retiring: the private half goes, the public half stays published.
    retired_pem = dict(keys.public_keys())[old]
    (keys_dir / "2026-01.key").unlink()
    (keys_dir / "2026-01.pub").write_text(retired_pem)
    assert {k for k, _ in load_key_dir(keys_dir).public_keys()} == {old, new}
    with pytest.raises(FileExistsError):
        generate_key(keys_dir, "2026-06")


@pytest.mark.parametrize("attack", ["group-readable", "symlink", "open-dir", "no-key", "not-dir"])
def test_key_files_with_wrong_permissions_are_refused(tmp_path: Path, attack: str) -> None:
    keys_dir = tmp_path / "keys"
    generate_key(keys_dir, "k")
    key = keys_dir / "k.key"
    target = keys_dir
    if attack == "group-readable":
        key.chmod(0o640)
    elif attack == "symlink":
        real = tmp_path / "elsewhere.key"
        os.replace(key, real)
        key.symlink_to(real)
    elif attack == "open-dir":
        keys_dir.chmod(0o777)
    elif attack == "no-key":
        key.unlink()
    else:
        target = key
    with pytest.raises(FailedPreconditionError) as error:
        load_key_dir(target)
    # The refusal names the file, never its contents.
    assert "PRIVATE KEY" not in str(error.value)
