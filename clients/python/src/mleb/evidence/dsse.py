"""DSSE envelopes (github.com/secure-systems-lab/dsse, protocol v1) over in-toto Statements.

Signatures are Ed25519 over the pre-authentication encoding (PAE) of the payload type and
payload. A key id is the hex sha256 of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SANDBOX_PREDICATE = "https://mleb.dev/attestation/sandbox-run/v1"
GRADING_PREDICATE = "https://mleb.dev/attestation/grading-report/v1"


class EvidenceError(ValueError):
    """Evidence that does not check out; the message says which part and why."""


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def keyid_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    # (keyid, signature) pairs.
    signatures: tuple[tuple[str, bytes], ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "payloadType": self.payload_type,
                "payload": base64.b64encode(self.payload).decode(),
                "signatures": [
                    {"keyid": keyid, "sig": base64.b64encode(sig).decode()}
                    for keyid, sig in self.signatures
                ],
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        try:
            data = json.loads(text)
            signatures = tuple(
                (str(entry["keyid"]), _b64(entry["sig"])) for entry in data["signatures"]
            )
            return cls(str(data["payloadType"]), _b64(data["payload"]), signatures)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise EvidenceError(f"not a DSSE envelope: {type(exc).__name__}: {exc}") from exc

    def verify(self, keys: Mapping[str, Ed25519PublicKey]) -> str:
        """The key id of a valid signature by one of `keys`; raises when there is none."""
        if not self.signatures:
            raise EvidenceError("envelope has no signatures")
        message = pae(self.payload_type, self.payload)
        bad = []
        # Any one valid signature by a trusted key will do (DSSE: a verifier may accept
        # an envelope when some signature verifies); the others are not held against it.
        for keyid, sig in self.signatures:
            key = keys.get(keyid)
            if key is None:
                continue
            try:
                key.verify(sig, message)
            except InvalidSignature:
                bad.append(keyid[:16])
                continue
            return keyid
        if bad:
            raise EvidenceError(f"bad signature by key {', '.join(bad)}")
        named = ", ".join(keyid[:16] for keyid, _sig in self.signatures)
        raise EvidenceError(f"signed by no trusted key (signed by {named})")

    def statement(self) -> dict[str, Any]:
        """The in-toto Statement inside; does not check signatures."""
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise EvidenceError(f"payloadType is {self.payload_type!r}, not in-toto")
        try:
            statement = json.loads(self.payload)
        except ValueError as exc:
            raise EvidenceError(f"payload is not JSON: {exc}") from exc
        if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
            raise EvidenceError("payload is not an in-toto v1 Statement")
        return statement


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise EvidenceError("base64 field is not a string")
    # DSSE allows standard or URL-safe base64.
    alphabet = b"-_" if ("-" in value or "_" in value) else None
    try:
        return base64.b64decode(value, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceError(f"bad base64: {exc}") from exc


def statement(
    subjects: Mapping[str, str], predicate_type: str, predicate: Mapping[str, Any]
) -> bytes:
    """An in-toto v1 Statement; `subjects` maps a name to its sha256 (hex)."""
    body = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": sha}} for name, sha in subjects.items()],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def subject_digests(statement: Mapping[str, Any]) -> dict[str, str]:
    """name -> sha256 of a Statement's subjects."""
    try:
        return {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    except (KeyError, TypeError) as exc:
        raise EvidenceError(f"statement subject is malformed: {exc}") from exc
