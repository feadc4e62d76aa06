"""What the sandbox core needs from its endpoint server and its GPU inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from services.sandbox.backends.base import NetworkMode


class Endpoints(Protocol):
    async def open(
        self,
        sandbox_id: str,
        sockets_dir: Path,
        sandbox_token: str,
        network: NetworkMode,
        allowed_hosts: list[str],
    ) -> None: ...

    async def close(self, sandbox_id: str) -> None: ...


class Inventory(Protocol):
    def snapshot(self) -> Any: ...

    def sample(self, uuids: list[str]) -> dict[str, tuple[int, int]]:
        """uuid -> (utilization percent, memory used bytes), as GpuInventory.sample."""
        ...
