"""The deployment's Ed25519 signing keys, and signing in-toto Statements with them.

MLEB_SIGNING_KEY_DIR holds the keys (docs/verifiable-runs.md#keys):
- `<name>.key`: a PKCS#8 PEM private key, mode 0600 or stricter, owned by this user (or owned
  by root and readable only by this process's group). Every one is published; the one whose
  name sorts last signs.
- `<name>.pub`: a retired key's public half, still published so old attestations verify.

Without the setting, the process makes one key in memory and warns: attestations then verify
only against the keys this very process publishes.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from mleb.common.v1 import common_pb2
from mleb.evidence.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, keyid_of, pae, public_pem, statement
from mleb.files import UnsafeFile, read_regular

from services.common.errors import FailedPreconditionError

log = structlog.get_logger("mleb.signing")

_MAX_KEY_FILE_BYTES = 16 * 1024


class KeyFileError(FailedPreconditionError):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="SIGNING_KEY_REFUSED")


@dataclass(frozen=True)
class SigningKeys:
    active: Ed25519PrivateKey
    # Every published public key, the active one included, by key id.
    published: Mapping[str, Ed25519PublicKey]

    @property
    def active_keyid(self) -> str:
        return keyid_of(self.active.public_key())

    def public_keys(self) -> list[tuple[str, str]]:
        return [(keyid, public_pem(key)) for keyid, key in sorted(self.published.items())]

    def sign_statement(
        self, subjects: Mapping[str, str], predicate_type: str, predicate: Mapping[str, Any]
    ) -> str:
        """A DSSE envelope (JSON) over an in-toto Statement."""
        payload = statement(subjects, predicate_type, predicate)
        signature = self.active.sign(pae(IN_TOTO_PAYLOAD_TYPE, payload))
        return Envelope(IN_TOTO_PAYLOAD_TYPE, payload, ((self.active_keyid, signature),)).to_json()


def _key_mode(info: os.stat_result) -> str | None:
    if _private_to_us(info):
        return None
    return (
        f"mode {stat.S_IMODE(info.st_mode):o}, owner uid {info.st_uid}: it must be this "
        "user's with mode 600 (or root's, readable by this process's group alone, as a "
        "Kubernetes Secret with fsGroup is)"
    )


def _private_to_us(info: os.stat_result) -> bool:
    """Ours and closed to everyone else; or root's, and open only to read by our group."""
    if info.st_uid == os.geteuid():
        return not info.st_mode & 0o077
    return info.st_uid == 0 and info.st_gid == os.getegid() and not info.st_mode & 0o037


def _load(path: Path, parse: Callable[[bytes], object]) -> object:
    """A key file parsed, any fault in it reported by name (never its contents). A private
    key must be closed to everyone else; no file is followed through a link."""
    private = path.suffix == ".key"
    try:
        data = read_regular(path, _MAX_KEY_FILE_BYTES, _key_mode if private else lambda _: None)
    except UnsafeFile as exc:
        raise KeyFileError(f"{'signing' if private else 'public'} key {path.name}: {exc}") from None
    try:
        return parse(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"key file {path.name}: not a PEM key ({type(exc).__name__})") from None


def load_key_dir(directory: Path) -> SigningKeys:
    info = directory.lstat() if directory.exists() or directory.is_symlink() else None
    if info is None or not stat.S_ISDIR(info.st_mode):
        raise KeyFileError("MLEB_SIGNING_KEY_DIR is not a directory")
    if info.st_mode & 0o022:
        raise KeyFileError("MLEB_SIGNING_KEY_DIR is writable by group or others")
    if info.st_uid not in (os.geteuid(), 0):
        raise KeyFileError("MLEB_SIGNING_KEY_DIR is owned by another user")
    private: list[tuple[str, Ed25519PrivateKey]] = []
    published: dict[str, Ed25519PublicKey] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix == ".key":
            secret = _load(path, lambda data: serialization.load_pem_private_key(data, None))
            if not isinstance(secret, Ed25519PrivateKey):
                raise KeyFileError(f"signing key {path.name}: not an Ed25519 key")
            private.append((path.name, secret))
            published[keyid_of(secret.public_key())] = secret.public_key()
        elif path.suffix == ".pub":
            public = _load(path, serialization.load_pem_public_key)
            if not isinstance(public, Ed25519PublicKey):
                raise KeyFileError(f"public key {path.name}: not an Ed25519 key")
            published[keyid_of(public)] = public
    if not private:
        raise KeyFileError("MLEB_SIGNING_KEY_DIR holds no .key file")
    return SigningKeys(private[-1][1], published)


@functools.cache
def _ephemeral() -> SigningKeys:
    key = Ed25519PrivateKey.generate()
    log.warning(
        "ephemeral_signing_key",
        keyid=keyid_of(key.public_key()),
        note="MLEB_SIGNING_KEY_DIR is not set: attestations are signed with a key that dies "
        "with this process",
    )
    return SigningKeys(key, {keyid_of(key.public_key()): key.public_key()})


def signing_keys(directory: Path | None) -> SigningKeys:
    return load_key_dir(directory) if directory is not None else _ephemeral()


def public_keys_proto(keys: SigningKeys) -> list[common_pb2.PublicKey]:
    """For the grader's and the sandbox service's ListPublicKeys."""
    return [common_pb2.PublicKey(keyid=keyid, pem=pem) for keyid, pem in keys.public_keys()]
