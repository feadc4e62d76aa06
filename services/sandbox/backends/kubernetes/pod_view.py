"""A Pod as the backend reads it: the few fields it uses, from the API's JSON.

The client's own models are not used for reads: building one makes a fresh client
Configuration per nested object, each of which resets two loggers' levels under logging's
global lock, and a Pod listing every poll interval then starves the event loop's own
logging calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str
    message: str


@dataclass(frozen=True)
class ContainerView:
    name: str
    image: str
    image_id: str
    # Unix seconds the container started, once it has (running or ended).
    started_at: float | None
    running: bool
    terminated: Terminated | None
    waiting_reason: str
    waiting_message: str

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ContainerView:
        state = raw.get("state") or {}
        running = state.get("running")
        ended = state.get("terminated")
        waiting = state.get("waiting") or {}
        started = (running or ended or {}).get("startedAt")
        return cls(
            name=str(raw.get("name", "")),
            image=str(raw.get("image", "")),
            image_id=str(raw.get("imageID", "")),
            started_at=_seconds(started) if started else None,
            running=running is not None,
            terminated=None
            if ended is None
            else Terminated(
                int(ended.get("exitCode", 0)),
                str(ended.get("reason", "")),
                str(ended.get("message", "")),
            ),
            waiting_reason=str(waiting.get("reason", "")),
            waiting_message=str(waiting.get("message", "")),
        )


@dataclass(frozen=True)
class PodView:
    name: str
    uid: str
    labels: dict[str, str]
    phase: str
    reason: str
    message: str
    node_name: str
    # Being deleted (deletionTimestamp set): its containers are being stopped.
    deleting: bool
    containers: tuple[ContainerView, ...]
    init_containers: tuple[ContainerView, ...]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PodView:
        metadata = raw.get("metadata") or {}
        status = raw.get("status") or {}
        return cls(
            name=str(metadata.get("name", "")),
            uid=str(metadata.get("uid", "")),
            labels=dict(metadata.get("labels") or {}),
            phase=str(status.get("phase", "")),
            reason=str(status.get("reason", "")),
            message=str(status.get("message", "")),
            node_name=str((raw.get("spec") or {}).get("nodeName", "")),
            deleting=bool(metadata.get("deletionTimestamp")),
            containers=tuple(
                ContainerView.from_json(c) for c in status.get("containerStatuses") or []
            ),
            init_containers=tuple(
                ContainerView.from_json(c) for c in status.get("initContainerStatuses") or []
            ),
        )

    def container(self, name: str) -> ContainerView | None:
        return next((c for c in self.containers if c.name == name), None)

    @property
    def ended(self) -> bool:
        return self.phase in ("Failed", "Succeeded")


def read_json(response: Any) -> Any:
    """The body of a call made with _preload_content=False."""
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
