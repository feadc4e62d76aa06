"""`mleb demo`: the whole system on one machine, with embedded defaults.

Starts registry, grader and sandbox servers in this process (SQLite, a local data dir),
imports the built-in competitions, runs the bundled scikit-learn agent on one of them in a
sandbox (Docker when an engine answers and the agent image can be built locally; otherwise
the local-process backend, which warns that it is not a security boundary), streams its
logs, grades its submission and prints the medal report, then shuts everything down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import os
import pwd
import secrets
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
from google.protobuf import duration_pb2
from mleb.client import NO_DEADLINE, AsyncClient
from mleb.evidence.dsse import Envelope, subject_digests
from mleb.evidence.keys import keyring
from mleb.report_proto import report_from_proto
from mleb.reports import CompetitionReport
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.builtin.agents import BASELINE_AGENT
from services.builtin.catalog import DEMO_COMPETITION, import_builtins
from services.common.auth import Role, TokenAuthority
from services.common.server import RunningServer, ServiceDefinition, start_server
from services.common.settings import Settings
from services.grader.app import grader_service
from services.registry.app import registry_service
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller
from services.sandbox.app import sandbox_service
from services.sandbox.backends.local.backend import AGENT_USER as LOCAL_AGENT_USER
from services.sandbox.config import SandboxSettings

AGENT_IMAGE = "mleb-demo-agent"
# Built by scripts/build_test_images.sh: Debian with python3, numpy, pandas, scikit-learn
# and the mleb client; the demo agent image adds the baseline agent on top.
AGENT_BASE_IMAGE = "mleb-test-python"
_AGENT_IN_IMAGE = "/opt/mleb/baseline_agent.py"
_TIME_LIMIT_S = 900

Say = Callable[[str], None]


def docker_agent_image(say: Say) -> str | None:
    """The demo agent's image, built locally from the base image; None when that can't be."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        say("No Docker engine answers.")
        return None
    try:
        client.images.get(AGENT_IMAGE)
        return AGENT_IMAGE
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.get(AGENT_BASE_IMAGE)
    except docker.errors.ImageNotFound:
        say(f"Docker answers, but the base image {AGENT_BASE_IMAGE} is missing "
            "(sudo bash scripts/build_test_images.sh builds it).")  # fmt: skip
        return None
    dockerfile = (
        f"FROM {AGENT_BASE_IMAGE}\nCOPY baseline_agent.py {_AGENT_IN_IMAGE}\n"
        f'CMD ["python3", "{_AGENT_IN_IMAGE}"]\n'
    )
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()),
                           ("baseline_agent.py", BASELINE_AGENT.read_bytes())):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    say(f"Building {AGENT_IMAGE} from {AGENT_BASE_IMAGE} (no registry pulls).")
    client.images.build(fileobj=context, custom_context=True, tag=AGENT_IMAGE, pull=False, rm=True)
    return AGENT_IMAGE


class DemoStack:
    """The three servers, started in order so each knows the addresses it needs."""

    def __init__(self, root: Path, backend: str) -> None:
        self.settings = Settings(
            data_dir=root / "data",
            database_url=f"sqlite:///{root / 'mleb.db'}",
            auth_secret="demo:" + secrets.token_hex(32),
            shutdown_grace_s=2.0,
            # The demo narrates; the servers' per-RPC JSON logs would drown it.
            log_level="warning",
        )
        self.backend = backend
        self.servers: list[RunningServer] = []

    async def _start(self, definition: ServiceDefinition) -> str:
        server = await start_server([definition], self.settings, port=0, host="127.0.0.1")
        self.servers.append(server)
        return f"127.0.0.1:{server.port}"

    async def start(self) -> None:
        registry = await self._start(registry_service(self.settings))
        self.settings = dataclasses.replace(self.settings, registry_addr=registry)
        grader = await self._start(grader_service(self.settings))
        self.settings = dataclasses.replace(self.settings, grader_addr=grader)
        sandbox_settings = dataclasses.replace(
            SandboxSettings.from_env(self.settings), backend=self.backend
        )
        sandbox = await self._start(sandbox_service(self.settings, sandbox_settings))
        self.settings = dataclasses.replace(self.settings, sandbox_addr=sandbox)

    def import_builtins(self) -> list[str]:
        core = RegistryCore.from_settings(self.settings)
        try:
            report = import_builtins(CompetitionInstaller(core.sessions, core.storage))
        finally:
            core.close()
        return [f"{r.competition_id}: {r.status.value}" for r in report.results]

    def client(self) -> AsyncClient:
        token = TokenAuthority.from_spec(self.settings.auth_secret).issue(Role.LAB, "demo")
        return AsyncClient(
            registry=self.settings.registry_addr,
            grader=self.settings.grader_addr,
            sandbox=self.settings.sandbox_addr,
            token=token,
            timeout=60,
        )

    async def stop(self) -> None:
        for server in reversed(self.servers):
            await server.stop(self.settings.shutdown_grace_s)


def submission_from_artifacts(archive: bytes) -> bytes | None:
    """submission/submission.csv out of the artifacts tar, read without extracting."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.lstrip("./") == "submission/submission.csv":
                handle = tar.extractfile(member)
                return handle.read() if handle else None
    return None


def check_local_agent_can_run(python: str = sys.executable) -> None:
    """As root, the local backend runs the agent as an unprivileged user: check before any
    server starts that this user can use this Python, its packages and the agent script,
    instead of failing inside the sandbox with "Permission denied"."""
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(LOCAL_AGENT_USER)
    try:
        usable = subprocess.run(
            [python, "-c", "import sys, numpy, pandas, sklearn; open(sys.argv[1]).close()",
             str(BASELINE_AGENT)],
            user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
            env={"PATH": "/usr/bin:/bin"}, capture_output=True, check=False,
        ).returncode == 0  # fmt: skip
    except OSError:  # the interpreter itself cannot be started as that user
        usable = False
    if not usable:
        raise RuntimeError(
            f"as root without Docker, the demo runs its agent as the user "
            f"{LOCAL_AGENT_USER!r}, who cannot use the Python at {python} (it lies in a "
            f"folder closed to other users, such as /root): move the checkout to a folder "
            f"others may read, run the demo as a regular user, or install Docker"
        )


async def run_demo(say: Say, show_log: Say, *, force_local: bool = False) -> CompetitionReport:
    image = None if force_local else await asyncio.to_thread(docker_agent_image, say)
    backend = "docker" if image else "local"
    if backend == "local":
        check_local_agent_can_run()
        say("Using the LOCAL backend: agents run as plain processes. It is not a security "
            "boundary; install Docker for real isolation.")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mleb-demo-") as root:
        # The local backend runs agents as an unprivileged user when we are root.
        Path(root).chmod(0o711)
        stack = DemoStack(Path(root), backend)
        await stack.start()
        try:
            say("Registry, grader and sandbox are serving: "
                f"{stack.settings.registry_addr}, {stack.settings.grader_addr}, "
                f"{stack.settings.sandbox_addr}.")  # fmt: skip
            for line in await asyncio.to_thread(stack.import_builtins):
                say(f"Imported {line}")
            async with stack.client() as client:
                return await _run_agent(client, say, show_log, image)
        finally:
            await stack.stop()
            say("Servers stopped.")


async def _run_agent(
    client: AsyncClient, say: Say, show_log: Say, image: str | None
) -> CompetitionReport:
    request = sandbox_service_pb2.CreateSandboxRequest(
        competition_id=DEMO_COMPETITION,
        image=image or "local",
        command=[] if image else [sys.executable, str(BASELINE_AGENT)],
        time_limit=duration_pb2.Duration(seconds=_TIME_LIMIT_S),
        resources=sandbox_pb2.Resources(cpus=2, memory_bytes=2 * 1024**3),
        labels={"mleb.demo": "1"},
    )
    sandbox = (await client.create_sandbox(request)).sandbox
    say(f"Sandbox {sandbox.id} created for {DEMO_COMPETITION}; streaming its logs.")
    async for batch in client.stream_logs(sandbox.id, follow=True, timeout=NO_DEADLINE):
        for entry in batch.entries:
            show_log(entry.text)
    sandbox = (await client.get_sandbox(sandbox.id)).sandbox
    state = sandbox_pb2.SandboxState.Name(sandbox.state)
    say(
        f"Sandbox finished: {state}"
        + (f" ({sandbox.failure_message})" if sandbox.failure_message else "")
    )
    archive = b"".join([part.data async for part in client.download_artifacts(sandbox.id)])
    submission = submission_from_artifacts(archive)
    if submission is None:
        raise RuntimeError(f"the agent left no submission ({state}: {sandbox.failure_message})")
    graded = await client.grade_submission(
        DEMO_COMPETITION, submission, submission_path=f"{sandbox.id}/submission/submission.csv"
    )
    await _verify_evidence(client, say, sandbox, submission, graded.statement)
    return report_from_proto(graded.report)


async def _verify_evidence(
    client: AsyncClient, say: Say, sandbox: sandbox_pb2.Sandbox, submission: bytes, graded: str
) -> None:
    """What `mleb verify` checks of one run, done here on the sandbox's attestation and the
    grading statement, with the keys the deployment publishes."""
    if not sandbox.attestation:
        raise RuntimeError(f"the sandbox was not attested: {sandbox.attestation_error}")
    listed = [*(await client.list_sandbox_keys()).keys, *(await client.list_grader_keys()).keys]
    keys = keyring((key.keyid, key.pem) for key in listed)
    digest = hashlib.sha256(submission).hexdigest()
    attestation = Envelope.from_json(sandbox.attestation)
    keyid = attestation.verify(keys)
    statement = attestation.statement()
    predicate = statement["predicate"]
    say(
        f"Attestation signed by key {keyid[:16]}: sandbox {sandbox.id}, "
        f"{predicate['validation_calls']} validation call(s), "
        f"{predicate['audit']['records']} audit record(s), submission sha256 {digest[:16]}."
    )
    grading = Envelope.from_json(graded)
    grading.verify(keys)
    attested = subject_digests(statement).get("submission.csv")
    if attested != digest or set(subject_digests(grading.statement()).values()) != {digest}:
        raise RuntimeError("the graded submission is not the one the sandbox attested")
    say("mleb verify: signatures, attested submission and grading statement: passed.")
