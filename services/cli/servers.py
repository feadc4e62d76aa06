"""Starting the mleb servers in this process (for `mleb serve` and the demo)."""

from __future__ import annotations

from collections.abc import Callable

from services.common.server import RunningServer, ServiceDefinition, start_server
from services.common.settings import DEFAULT_PORTS, Settings


def _registry(settings: Settings) -> ServiceDefinition:
    from services.registry.app import registry_service

    return registry_service(settings)


def _grader(settings: Settings) -> ServiceDefinition:
    from services.grader.app import grader_service

    return grader_service(settings)


def _sandbox(settings: Settings) -> ServiceDefinition:
    from services.sandbox.app import sandbox_service

    return sandbox_service(settings)


SERVICE_BUILDERS: dict[str, Callable[[Settings], ServiceDefinition]] = {
    "registry": _registry,
    "grader": _grader,
    "sandbox": _sandbox,
}


async def start_services(
    names: list[str], settings: Settings, ports: dict[str, int] | None = None
) -> dict[str, RunningServer]:
    """Starts each named service on its own port (default ports unless overridden)."""
    ports = ports or {}
    running: dict[str, RunningServer] = {}
    for name in names:
        definition = SERVICE_BUILDERS[name](settings)
        running[name] = await start_server(
            [definition], settings, port=ports.get(name, DEFAULT_PORTS[name])
        )
    return running
