"""A sandbox's endpoints served by its node runner, on the node the scheduler chose: the
same validation, grader and allowlist-proxy sockets the service serves on its own host for
the Docker backend (services.sandbox.node.endpoints), with the sandbox's own token.

They live in a folder of the node's own (services.sandbox.node.runner_sockets), and the egress
log goes back to the service through the runner's folder.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import structlog

from services.common.settings import Settings
from services.sandbox.backends.base import LaunchSpec
from services.sandbox.node.egress_proxy import (
    AddressPolicy,
    EgressEvent,
    EgressSums,
    parse_address_allowances,
)
from services.sandbox.node.endpoints import SandboxEndpoints
from services.sandbox.node.runner_files import RunnerFiles, RunnerOptions
from services.sandbox.node.runner_sockets import SocketsFolder

log = structlog.get_logger("mleb.node_runner")


class FileEgressLog:
    """The proxy's events summed in memory, written whole into the runner's folder on each
    flush (SandboxEndpoints flushes when it closes). Bounded like the service's log."""

    def __init__(self, files: RunnerFiles, max_destinations: int) -> None:
        self._files = files
        self._sums = EgressSums(max_destinations)

    def record(self, sandbox_id: str, event: EgressEvent) -> None:
        self._sums.add(event)

    async def flush(self, sandbox_id: str) -> None:
        try:
            self._files.write(self._files.egress, self._sums.to_json())
        except OSError as exc:  # egress must never break the proxy or the runner
            log.warning("egress_log_write_failed", sandbox_id=sandbox_id, error=exc.strerror)

    async def aclose(self) -> None:
        return None


class NodeEndpoints:
    def __init__(self, files: RunnerFiles, options: RunnerOptions) -> None:
        client_tls_ca = Path(options.client_tls_ca) if options.client_tls_ca else None
        self._egress = FileEgressLog(files, options.egress_max_destinations)
        self._endpoints = SandboxEndpoints(
            options.grader_addr,
            # Only the grader's address and CA are read: for the runner's channel to it.
            Settings(data_dir=files.folder, database_url="", client_tls_ca=client_tls_ca),
            AddressPolicy(
                parse_address_allowances(
                    options.egress_allow_addresses, "MLEB_SANDBOX_EGRESS_ALLOW_ADDRESSES"
                )
            ),
            self._egress,
        )
        self._sockets: SocketsFolder | None = None
        self._sandbox_id = ""

    async def open(self, spec: LaunchSpec) -> LaunchSpec:
        """Serves the endpoints; returns the spec with the sockets folder they are in."""
        self._sandbox_id = spec.sandbox_id
        self._sockets = await asyncio.to_thread(SocketsFolder.claim, spec.sandbox_id)
        await self._endpoints.open(
            spec.sandbox_id,
            self._sockets.sockets,
            spec.env["MLEB_SANDBOX_TOKEN"],
            spec.network,
            list(spec.allowed_hosts),
        )
        layout = dataclasses.replace(spec.layout, sockets_dir=self._sockets.sockets)
        return dataclasses.replace(spec, layout=layout)

    async def flush_egress(self) -> None:
        """Writes the egress log so far: a runner killed later still leaves it."""
        await self._egress.flush(self._sandbox_id)

    async def close(self) -> None:
        """Ends the agent's connections and writes the egress log. Idempotent."""
        await self._endpoints.aclose()
        if self._sockets is not None:
            self._sockets.remove()
            self._sockets = None
