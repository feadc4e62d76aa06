"""`mleb sandboxes ...` against a running sandbox service, and the retention cleanup."""

from __future__ import annotations

import asyncio
import tarfile

from mleb.sandbox.v1 import sandbox_pb2
from typer.testing import CliRunner

from services.cli.sandbox_cmds import sandboxes_app
from tests.fixtures.sandbox_stack import agent

S = sandbox_pb2
WRITE = (
    "import os\n"
    "open(os.environ['SUBMISSION_DIR'] + '/submission.csv', 'w').write('id\\n1\\n')\n"
    "print('hello from the agent', flush=True)\n"
)


async def test_list_show_logs_stop_download_and_cleanup(sandbox_stack, tmp_path, lab_token):
    server, stub = await sandbox_stack.start()
    done = await sandbox_stack.create(stub, agent(WRITE), labels={"exp": "cli"})
    done = await sandbox_stack.wait_for(stub, done.id)
    sleeper = await sandbox_stack.create(stub, agent("import time; time.sleep(60)"))
    await sandbox_stack.wait_for(stub, sleeper.id, {S.SANDBOX_STATE_RUNNING})
    env = {
        "MLEB_SANDBOX_ADDR": f"127.0.0.1:{server.port}",
        "MLEB_TOKEN": lab_token,
        "COLUMNS": "200",
    }
    runner = CliRunner()

    async def run(*args: str, **extra_env: str):
        result = await asyncio.to_thread(
            runner.invoke, sandboxes_app, list(args), env={**env, **extra_env}
        )
        assert result.exit_code == 0, result.output
        return result.output

    listed = await run("list", "--label", "exp=cli")
    assert done.id in listed and sleeper.id not in listed and "SUCCEEDED" in listed
    assert sleeper.id in await run("list", "--state", "running")
    shown = await run("show", done.id)
    assert "SUCCEEDED" in shown and "collected" in shown
    logs = await run("logs", done.id, "--follow")
    assert "out hello from the agent" in logs
    first_seq = int(logs.splitlines()[0].split()[0])
    resumed = await run("logs", done.id, "--after", str(first_seq))
    assert resumed.splitlines() == logs.splitlines()[1:]
    assert "CANCELLED" in await run("stop", sleeper.id, "--grace", "0.5", "--reason", "cli")
    archive = tmp_path / "out.tar"
    await run("artifacts", "download", done.id, "-o", str(archive))
    with tarfile.open(archive) as tar:
        assert tar.extractfile("submission/submission.csv").read() == b"id\n1\n"
    failed = await asyncio.to_thread(runner.invoke, sandboxes_app, ["show", "sbx-missing"], env=env)
    assert failed.exit_code == 1 and "NOT_FOUND" in failed.output
    # Retention: both ended, so both folders go; records and logs stay.
    database = {"MLEB_DATABASE_URL": sandbox_stack.settings.database_url}
    assert "0 sandbox folder(s)" in await run("cleanup", "--older-than", "1", **database)
    cleaned = await run("cleanup", "--older-than", "0", **database)
    assert done.id in cleaned and sleeper.id in cleaned
    root = sandbox_stack.sandbox_settings.work_dir / "sandboxes" / done.id
    assert not root.exists()
    assert "out hello from the agent" in await run("logs", done.id)
    gone = await asyncio.to_thread(
        runner.invoke,
        sandboxes_app,
        ["artifacts", "download", done.id, "-o", str(archive)],
        env=env,
    )
    assert gone.exit_code == 1 and "FAILED_PRECONDITION" in gone.output
