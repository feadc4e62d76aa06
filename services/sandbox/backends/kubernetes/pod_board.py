"""One list of this instance's Pods per poll interval serves every sandbox's watch, instead
of a read per sandbox per interval: a thousand sandboxes are one request a second, not a
thousand (the Slurm backend's JobBoard does the same with squeue)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from services.sandbox.backends.kubernetes.pod_view import PodView


class PodBoard:
    def __init__(
        self, list_pods: Callable[[], Awaitable[list[PodView]]], interval_s: float
    ) -> None:
        self._list = list_pods
        self._interval_s = interval_s
        self._pods: dict[str, PodView] = {}
        self._at = float("-inf")
        self._refresh: asyncio.Future[None] | None = None

    async def pod(self, name: str) -> PodView | None:
        """The Pod as last listed, at most an interval ago; None when the list lacks it.
        Raises what the listing raised; the next call lists again."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._at >= self._interval_s:
            if self._refresh is None:
                self._refresh = asyncio.ensure_future(self._relist())
            refresh = self._refresh
            await asyncio.shield(refresh)
        return self._pods.get(name)

    async def _relist(self) -> None:
        try:
            pods = await self._list()
            self._pods = {pod.name: pod for pod in pods}
            self._at = asyncio.get_running_loop().time()
        finally:
            self._refresh = None
