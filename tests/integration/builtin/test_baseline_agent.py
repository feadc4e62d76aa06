"""The bundled baseline agent, run as a plain process against a built-in competition's public
data, validating through a real grader: over gRPC, and over the sandbox's HTTP endpoint."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from mleb.client import AsyncClient

from services.builtin.agents import BASELINE_AGENT
from services.common.auth import Role
from services.sandbox.backends.base import NetworkMode
from services.sandbox.node.endpoints import VALIDATE_SOCKET, SandboxEndpoints

COMPETITION = "breast-cancer-diagnosis"


async def _run_agent(data_dir: Path, work: Path, **env: str) -> tuple[int, str]:
    environment = {
        "PATH": os.environ["PATH"],
        "DATA_DIR": str(data_dir),
        "SUBMISSION_DIR": str(work / "submission"),
        "CODE_DIR": str(work / "code"),
        **env,
    }
    (work / "code").mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BASELINE_AGENT),
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    return process.returncode, output.decode()


def _sandbox_token(authority, competition_id: str) -> str:
    return authority.issue(
        Role.SANDBOX, "agent", sandbox_id="sb-agent", competition_id=competition_id
    )


async def test_agent_trains_writes_and_validates_over_grpc(
    builtin_stack, authority, lab_token, tmp_path
):
    stack = await builtin_stack([COMPETITION])
    code, output = await _run_agent(
        stack.built / COMPETITION / "public",
        tmp_path,
        MLEB_GRADER_ADDR=stack.grader_addr,
        MLEB_SANDBOX_TOKEN=_sandbox_token(authority, COMPETITION),
        MLEB_COMPETITION_ID=COMPETITION,
    )
    assert code == 0, output
    assert "validated over gRPC" in output and "validation: Submission is valid." in output
    assert "cv logistic regression" in output  # it compared models before training
    assert (tmp_path / "code" / BASELINE_AGENT.name).is_file()
    submission = (tmp_path / "submission" / "submission.csv").read_bytes()
    async with AsyncClient(grader=stack.grader_addr, token=lab_token) as client:
        report = (await client.grade_submission(COMPETITION, submission)).report
    assert report.valid_submission and report.above_median


async def test_agent_validates_over_the_sandbox_http_endpoint(builtin_stack, authority, tmp_path):
    stack = await builtin_stack([COMPETITION, "handwritten-digits"])
    endpoints = SandboxEndpoints(stack.grader_addr, stack.settings)
    # Unix socket paths are limited to about 100 bytes, so not under pytest's long tmp_path.
    with tempfile.TemporaryDirectory(prefix="mleb-agent-") as sockets:
        await endpoints.open(
            "sb-agent", Path(sockets), _sandbox_token(authority, COMPETITION), NetworkMode.NONE, []
        )
        try:
            env = {"MLEB_VALIDATE_SOCKET": str(Path(sockets) / VALIDATE_SOCKET)}
            code, output = await _run_agent(stack.built / COMPETITION / "public", tmp_path, **env)
            assert code == 0, output
            assert "validated over HTTP" in output and "Submission is valid." in output
            # Another competition's data makes a submission this sandbox's validator rejects,
            # and the agent says so in its exit status.
            code, output = await _run_agent(
                stack.built / "handwritten-digits" / "public", tmp_path / "wrong", **env
            )
            assert code == 1, output
            assert "validation: Submission invalid!" in output
        finally:
            await endpoints.aclose()
