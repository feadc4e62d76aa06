"""What lab-side commands take from the environment: the MLEB_* variables the servers also use
(addresses, MLEB_TOKEN, MLEB_TLS_CA), read without any server package."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Any

from mleb.client import AsyncClient, Client


def tls_ca() -> bytes | None:
    """The CA bundle MLEB_TLS_CA names, to verify the services' certificates."""
    path = os.environ.get("MLEB_TLS_CA", "")
    return Path(path).read_bytes() if path else None


def version() -> str:
    """This lab installation's mleb version, as run groups and reports record it."""
    try:
        return metadata.version("mleb")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def client(**options: Any) -> Client:
    return Client(tls_ca=tls_ca(), **options)


def async_client(**options: Any) -> AsyncClient:
    return AsyncClient(tls_ca=tls_ca(), **options)


def deployment_keys() -> list[tuple[str, str]]:
    """Every key the configured grader and sandbox service publish (ListPublicKeys)."""
    found: dict[str, str] = {}
    with client() as connected:
        for listing in (connected.list_grader_keys(), connected.list_sandbox_keys()):
            found.update((key.keyid, key.pem) for key in listing.keys)
    return sorted(found.items())
