"""What every part of the sandbox driver shares (supervision, reconcile): one bundle, so no
constructor grows a dozen arguments again (ruff's argument-count rule holds the line)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from services.sandbox.backends.base import Backend
from services.sandbox.config import SandboxSettings
from services.sandbox.db.sandbox_rows import SandboxRows
from services.sandbox.lifecycle.live import LiveSandboxes
from services.sandbox.lifecycle.tasks import BackgroundTasks
from services.sandbox.lifecycle.threads import WorkerThreads


@dataclass(frozen=True)
class Driving:
    sessions: sessionmaker[Session]
    rows: SandboxRows
    threads: WorkerThreads
    tasks: BackgroundTasks
    backend: Backend
    live: LiveSandboxes
    settings: SandboxSettings
    # Labels on every container this service instance starts, to find its own again.
    instance_labels: dict[str, str]
