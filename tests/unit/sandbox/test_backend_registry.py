"""The backend registry: names, capabilities, entry points, `auto`, and the refusals.

A third-party backend is installed for real: a distribution's metadata on sys.path declaring
an `mleb.sandbox_backends` entry point, read by importlib.metadata in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.common.errors import FailedPreconditionError, InvalidArgumentError
from services.sandbox.backends import registry
from services.sandbox.backends.base import BackendProvider
from services.sandbox.backends.docker import backend as docker
from services.sandbox.backends.local import backend as local
from services.sandbox.config import SandboxSettings
from services.sandbox.lifecycle import quotas

PLUGIN = """
from dataclasses import replace

from services.sandbox.backends.local import backend as local
from services.sandbox.backends.base import BackendProvider, GpuAllocation


class EchoBackend(local.LocalBackend):
    name = "echo"
    capabilities = replace(local.CAPABILITIES, mounts_public_cache=True)


PROVIDER = BackendProvider(
    "echo", EchoBackend.capabilities, lambda settings: EchoBackend(settings.work_dir / "echo")
)


class ScheduledBackend(local.LocalBackend):
    name = "scheduled"
    capabilities = replace(
        local.CAPABILITIES, gpu_allocation=GpuAllocation.SCHEDULER, outputs_on_host=False
    )


SCHEDULED = BackendProvider(
    "scheduled", ScheduledBackend.capabilities, lambda settings: ScheduledBackend(settings.work_dir)
)
"""

PROBE = """
import json, sys
from pathlib import Path
from services.common.errors import MlebError
from services.sandbox import app, servicer
from services.sandbox.lifecycle import admission
from services.sandbox.lifecycle import quotas
from services.sandbox.backends import registry
from services.sandbox.config import SandboxSettings
from services.sandbox.records import SandboxRequest

def outcome(call):
    try:
        return type(call()).__name__
    except MlebError as exc:
        return f"{exc.reason}: {exc}"

work = Path(sys.argv[1])
echo = SandboxSettings(work_dir=work, backend="echo")
print(json.dumps({
    "names": list(registry.providers()),
    "built": outcome(lambda: registry.choose(echo)),
    "other": outcome(lambda: registry.provider("other")),
    "scheduled": outcome(lambda: app.choose_backend(
        SandboxSettings(work_dir=work, backend="scheduled"))),
    "no_command": outcome(lambda: admission.normalize(
        SandboxRequest(competition_id="c", image="img"), "lab", echo, "echo")),
    "enforcement": quotas.enforcement(registry.provider("echo").capabilities).value,
    "enum": servicer._backend_enum("echo"),
    "auto": outcome(lambda: registry.choose(SandboxSettings(work_dir=work, backend="auto"))),
    "docker": outcome(lambda: registry.choose(SandboxSettings(work_dir=work, backend="docker"))),
}))
"""


def _install_plugin(site: Path) -> None:
    """What `pip install` of a distribution declaring the entry points leaves on sys.path."""
    (site / "mleb_echo_backend.py").write_text(PLUGIN)
    info = site / "mleb_echo_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mleb-echo-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(f"""\
            [{registry.ENTRY_POINT_GROUP}]
            echo = mleb_echo_backend:PROVIDER
            other = mleb_echo_backend:PROVIDER
            scheduled = mleb_echo_backend:SCHEDULED
            missing = mleb_echo_backend_gone:PROVIDER
            """)
    )


def _probe(tmp_path: Path, **env: str) -> dict:
    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site)
    paths = [str(site), os.environ.get("PYTHONPATH", ""), str(Path.cwd())]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_installed_entry_point_backend_is_chosen_by_name_and_asked_capabilities(tmp_path):
    # No engine answers at this address, so `auto` falls back as it does without Docker.
    seen = _probe(tmp_path, DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    assert seen["names"] == ["docker", "echo", "kubernetes", "local", "scheduled", "slurm"]
    assert seen["built"] == "EchoBackend"
    # An entry point naming a provider of another name is left out, and named when asked for.
    assert "failed to load" in seen["other"] and "available: auto, docker, echo" in seen["other"]
    # The core drives only backends whose outputs it reads on its host.
    assert seen["scheduled"].startswith("BACKEND_NOT_SUPPORTED")
    # Its capabilities, not its name, decide what a create request needs.
    assert "command: the echo backend runs no image" in seen["no_command"]
    assert seen["enforcement"] == "WATCHDOG_OUTPUTS_ONLY"
    assert seen["enum"] == "BACKEND_UNSPECIFIED"  # the proto names it by backend_name
    assert seen["auto"] == "LocalBackend"
    assert seen["docker"].startswith("NO_DOCKER_ENGINE")


def test_kubernetes_without_its_addresses_is_a_clear_configuration_error(tmp_path, monkeypatch):
    for name in ("MLEB_K8S_REGISTRY_ADDR", "MLEB_REGISTRY_ADDR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InvalidArgumentError) as refused:
        registry.choose(SandboxSettings(work_dir=tmp_path, backend="kubernetes"))
    assert "MLEB_K8S_REGISTRY_ADDR" in str(refused.value)


def test_an_unknown_name_lists_the_registered_ones(tmp_path):
    with pytest.raises(InvalidArgumentError) as refused:
        registry.choose(SandboxSettings(work_dir=tmp_path, backend="dokcer"))
    message = str(refused.value)
    assert (
        "no backend is named 'dokcer'; available: auto, docker, kubernetes, local, slurm" in message
    )


def test_a_taken_name_or_auto_cannot_be_registered():
    with pytest.raises(ValueError, match="two sandbox backends"):
        registry.register(BackendProvider("docker", local.CAPABILITIES, local.PROVIDER.build))
    with pytest.raises(ValueError, match="picks one"):
        registry.register(BackendProvider("auto", local.CAPABILITIES, local.PROVIDER.build))
    registry.register(docker.PROVIDER)  # the same provider again (built in and declared)
    assert registry.providers()["docker"] is docker.PROVIDER


def test_built_in_capabilities(tmp_path):
    assert docker.CAPABILITIES.needs_image and docker.CAPABILITIES.security_boundary
    assert not local.CAPABILITIES.needs_image and not local.CAPABILITIES.security_boundary
    assert quotas.enforcement(docker.CAPABILITIES) == quotas.DiskEnforcement.WATCHDOG
    # With an engine answering, auto means Docker, as before the registry.
    try:
        chosen = registry.choose(SandboxSettings(work_dir=tmp_path, backend="auto"))
    except FailedPreconditionError:
        pytest.skip("no Docker engine answers here")
    assert chosen.name == "docker"
