"""Shared fixtures: settings, tokens, and real servers on 127.0.0.1 port 0."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from services.common.auth import Role, TokenAuthority
from services.common.server import RunningServer, ServiceDefinition, start_server
from services.common.settings import Settings

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.grading_stack",
    "tests.fixtures.sandbox_dirs",
    "tests.fixtures.sandbox_stack",
    "tests.fixtures.sandbox_docker",
    "tests.fixtures.cluster_fixtures",
]

TEST_AUTH_SECRET = "test-key:" + "s" * 40


def require_or_skip(available: bool, what: str, env_flag: str) -> None:
    """Skips a test that needs `what`, unless CI demands it (then it fails)."""
    if available:
        return
    if os.environ.get(env_flag) == "1":
        pytest.fail(f"{what} is required here ({env_flag}=1) but is not available")
    pytest.skip(f"needs {what}")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'mleb.db'}",
        auth_secret=TEST_AUTH_SECRET,
        shutdown_grace_s=1.0,
    )


@pytest.fixture
def authority() -> TokenAuthority:
    return TokenAuthority.from_spec(TEST_AUTH_SECRET)


@pytest.fixture
def lab_token(authority: TokenAuthority) -> str:
    return authority.issue(Role.LAB, "test-lab")


@pytest.fixture
def service_token(authority: TokenAuthority) -> str:
    return authority.issue(Role.SERVICE, "test-service")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def serve() -> AsyncIterator[Callable]:
    """Starts servers for a test and stops them afterwards: `await serve([defs], settings)`."""
    started: list[RunningServer] = []

    async def start(
        definitions: list[ServiceDefinition], settings: Settings, **overrides
    ) -> RunningServer:
        if overrides:
            settings = dataclasses.replace(settings, **overrides)
        server = await start_server(definitions, settings, port=0, host="127.0.0.1")
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        await server.stop(grace=0.5)


@pytest.fixture
async def channel_to() -> AsyncIterator[Callable[[RunningServer], grpc.aio.Channel]]:
    channels: list[grpc.aio.Channel] = []

    def open_channel(server: RunningServer) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        channels.append(channel)
        return channel

    yield open_channel
    for channel in channels:
        await channel.close()
