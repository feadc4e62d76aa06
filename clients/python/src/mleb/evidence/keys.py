"""Public keys in `mleb keys` format: each PEM block preceded by a line `keyid: <id>`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from mleb.evidence.dsse import EvidenceError, keyid_of

_BLOCK = re.compile(
    r"keyid:\s*(?P<keyid>[0-9a-f]{64})\s*\n"
    r"(?P<pem>-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----)"
)

Keyring = dict[str, Ed25519PublicKey]


def parse_pem(keyid: str, pem: str) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise EvidenceError(f"key {keyid[:16]}: not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise EvidenceError(f"key {keyid[:16]}: not an Ed25519 key")
    if keyid_of(key) != keyid:
        raise EvidenceError(f"key {keyid[:16]}: keyid is not the sha256 of the key")
    return key


def keyring(pairs: Iterable[tuple[str, str]]) -> Keyring:
    return {keyid: parse_pem(keyid, pem) for keyid, pem in pairs}


def parse_keys_text(text: str) -> Keyring:
    """Reads `mleb keys` output, or its `--json` form."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            return keyring((entry["keyid"], entry["pem"]) for entry in json.loads(stripped))
        except (ValueError, KeyError, TypeError) as exc:
            raise EvidenceError(f"keys file: bad JSON: {exc}") from exc
    pairs = [(m["keyid"], m["pem"] + "\n") for m in _BLOCK.finditer(text)]
    if not pairs:
        raise EvidenceError("keys file holds no 'keyid:' line followed by a PUBLIC KEY block")
    return keyring(pairs)


def format_keys(pairs: Iterable[tuple[str, str]]) -> str:
    return "".join(f"keyid: {keyid}\n{pem.rstrip()}\n" for keyid, pem in pairs)


def generate_key(directory: Path, name: str) -> str:
    """Writes `<name>.key` (mode 0600, never over an existing file); returns its key id."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(directory / f"{name}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                 0o600)  # fmt: skip
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return keyid_of(key.public_key())
