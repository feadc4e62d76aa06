"""The TypeScript client (clients/typescript) against a real registry and grader: its own
test suite, run with `npm test` while the servers serve in this process."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from tests.conftest import require_or_skip
from tests.fixtures.grading_stack import COMPETITION

TS_CLIENT = Path(__file__).resolve().parents[3] / "clients" / "typescript"
NPM_TEST_TIMEOUT_S = 300


def _node_ready() -> bool:
    tools = all(shutil.which(tool) for tool in ("node", "npm"))
    return tools and (TS_CLIENT / "node_modules" / ".bin" / "tsc").exists()


async def test_typescript_client_suite_passes_against_running_servers(stack, lab_token):
    require_or_skip(
        _node_ready(),
        "node, npm and clients/typescript/node_modules (run `npm ci` there)",
        "MLEB_REQUIRE_NODE",
    )
    env = {
        **os.environ,
        "MLEB_REGISTRY_ADDR": f"127.0.0.1:{stack.registry_port}",
        "MLEB_GRADER_ADDR": f"127.0.0.1:{stack.grader_port}",
        "MLEB_TOKEN": lab_token,
        "MLEB_COMPETITION_ID": COMPETITION,
    }
    # A child process, so the servers in this event loop keep serving while it runs.
    npm = await asyncio.create_subprocess_exec(
        "npm",
        "test",
        cwd=TS_CLIENT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(npm.communicate(), NPM_TEST_TIMEOUT_S)
    except TimeoutError:
        npm.kill()
        await npm.wait()
        raise
    text = output.decode(errors="replace")
    assert npm.returncode == 0, text[-10_000:]
    # node's test runner closes with counts; zero tests run would also exit 0.
    counts = {name: int(n) for name, n in re.findall(r"^# (tests|pass|fail) (\d+)$", text, re.M)}
    assert counts.get("tests", 0) > 0 and counts == {
        "tests": counts["tests"],
        "pass": counts["tests"],
        "fail": 0,
    }, text[-10_000:]
