"""How operator commands reach a running service: the lab's channel factory (mleb.channels,
TLS from MLEB_TLS_CA, retries of idempotent calls) and the client's error translation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import typer
from mleb.channels import sync_channel
from mleb.errors import from_rpc_error
from mleb.lab import environment
from rich.console import Console

errors = Console(stderr=True)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


@contextmanager
def channel_to(address: str) -> Iterator[grpc.Channel]:
    """A channel for the command's calls; a refusal ends the command with its status."""
    try:
        with sync_channel(address, environment.tls_ca()) as channel:
            yield channel
    except grpc.RpcError as error:
        refused = from_rpc_error(error)
        errors.print(
            f"[red]{refused.code.name}:[/red] {refused.message}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None
