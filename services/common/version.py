"""This installation's mleb version, as records and attestations name it."""

from __future__ import annotations

from importlib import metadata


def mleb_version() -> str:
    try:
        return metadata.version("mleb-server")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"
