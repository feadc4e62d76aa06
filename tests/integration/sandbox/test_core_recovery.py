"""Crash recovery: a restarted sandbox service adopts running agents, finishes vanished ones,
removes orphans and replays logs; including SIGKILL of a real `mleb serve sandbox`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import grpc
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.sandbox.backends.local.backend import LocalBackend
from services.sandbox.lifecycle.core import INSTANCE_LABEL, NODE_LABEL, SERVICE_LABEL
from services.sandbox.node.layout import host_layout
from tests.fixtures.sandbox_stack import agent

S = sandbox_pb2

TICKER = (
    "import os, time\n"
    "for i in range(15):\n"
    "    print(f'tick {i}', flush=True)\n"
    "    time.sleep(0.2)\n"
    "open(os.environ['SUBMISSION_DIR'] + '/submission.csv', 'w').write('id\\n')\n"
)


async def wait_for_line(sandbox_stack, stub, sandbox_id: str, text: str) -> None:
    async with asyncio.timeout(30):
        while not any(e.text == text for e in await sandbox_stack.logs(stub, sandbox_id)):
            await asyncio.sleep(0.05)


async def sigkill(server) -> None:
    server.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(server.process.wait, 20)


def assert_ticks_once(entries) -> None:
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    ticks = [e.text for e in entries if e.stream == S.LOG_STREAM_STDOUT]
    assert ticks == [f"tick {i}" for i in range(15)]


def instance_labels(sandbox_stack) -> dict[str, str]:
    settings = sandbox_stack.sandbox_settings
    return {
        SERVICE_LABEL: "sandbox",
        NODE_LABEL: settings.node,
        INSTANCE_LABEL: settings.instance_id,
    }


async def test_a_restarted_service_adopts_a_running_agent(sandbox_stack):
    first, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(stub, agent(TICKER))
    await wait_for_line(sandbox_stack, stub, sandbox.id, "tick 3")
    await first.stop(grace=0.5)  # the agent keeps running without its service
    _second, stub = await sandbox_stack.start()
    done = await sandbox_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED and done.submission_collected
    entries = await sandbox_stack.logs(stub, sandbox.id)
    assert_ticks_once(entries)
    assert "re-attached after a service restart" in [e.text for e in entries]


async def test_a_vanished_agent_is_lost_and_an_orphan_is_removed(sandbox_stack, open_tmp):
    first, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(
        stub, agent("import time; print('up', flush=True); time.sleep(60)")
    )
    await wait_for_line(sandbox_stack, stub, sandbox.id, "up")
    await first.stop(grace=0.5)
    runs = sandbox_stack.sandbox_settings.work_dir / "local-runs"
    backend = LocalBackend(runs)
    ((handle, running),) = await backend.list_owned(instance_labels(sandbox_stack))
    assert running and handle.sandbox_id == sandbox.id
    await backend.remove(handle)  # the agent vanishes while no service watches
    # An agent labelled as ours that no record knows: an orphan.
    orphan_root = open_tmp / "orphan"
    layout = host_layout(orphan_root)
    for folder in (layout.data_dir, layout.submission_dir, layout.logs_dir, layout.code_dir,
                   layout.sockets_dir):  # fmt: skip
        folder.mkdir(parents=True)
    from services.sandbox.backends.base import LaunchSpec, NetworkMode

    await backend.launch(
        LaunchSpec(
            sandbox_id="sbx-orphan", competition_id="c", image="",
            command=agent("import time; time.sleep(60)"), env={}, cpus=1.0, memory_bytes=1 << 30,
            shm_bytes=0, pids_limit=64, gpu_uuids=[], network=NetworkMode.NONE, allowed_hosts=[],
            layout=layout, mlebench_compat=False, labels=instance_labels(sandbox_stack),
        )
    )  # fmt: skip
    orphan_pid = int((runs / "sbx-orphan" / "agent.pid").read_text())
    _second, stub = await sandbox_stack.start()
    done = await sandbox_stack.wait_for(stub, sandbox.id)
    assert done.state == S.SANDBOX_STATE_FAILED
    assert done.failure_reason == S.FAILURE_REASON_LOST
    assert done.failure_class == S.FAILURE_CLASS_INFRASTRUCTURE
    async with asyncio.timeout(10):
        while (runs / "sbx-orphan").exists():
            await asyncio.sleep(0.05)
    assert not _pid_alive(orphan_pid)


async def test_a_stop_under_way_ends_as_asked_when_what_it_stopped_is_gone(sandbox_stack):
    """The service dies while a stop waits out its grace; meanwhile the agent goes (as a
    Kubernetes stop deletes the Pod). The next service ends it CANCELLED with the stop's
    reason, not LOST."""
    env = sandbox_stack.served_env(MLEB_SANDBOX_QUEUE_POLL_INTERVAL_S="0.2")
    ignores_sigterm = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True)\n"
        "time.sleep(120)\n"
    )
    async with sandbox_stack.served(env) as (first, stub):
        sandbox = await sandbox_stack.create(stub, agent(ignores_sigterm))
        await wait_for_line(sandbox_stack, stub, sandbox.id, "up")
        # StopSandbox answers once the sandbox has ended, which this one will not by itself.
        stopping = asyncio.ensure_future(
            stub.StopSandbox(
                sandbox_service_pb2.StopSandboxRequest(
                    sandbox_id=sandbox.id, grace_period={"seconds": 120}, reason="operator stop"
                ),
                metadata=sandbox_stack.metadata,
            )
        )
        await wait_for_line(sandbox_stack, stub, sandbox.id, "stopping: operator stop; "
                            "killing after 120s")  # fmt: skip
        await sigkill(first)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stopping
    backend = LocalBackend(sandbox_stack.sandbox_settings.work_dir / "local-runs")
    ((handle, _running),) = await backend.list_owned(instance_labels(sandbox_stack))
    await backend.remove(handle)
    async with sandbox_stack.served(env) as (second, stub):
        done = await sandbox_stack.wait_for(stub, sandbox.id)
        assert done.state == S.SANDBOX_STATE_CANCELLED, (done.state, done.failure_message)
        assert done.failure_message == "operator stop"
        assert second.terminate() == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


async def test_logs_replay_after_a_restart(sandbox_stack):
    first, stub = await sandbox_stack.start()
    sandbox = await sandbox_stack.create(stub, agent("for i in range(700): print(i)"))
    await sandbox_stack.wait_for(stub, sandbox.id)
    before = await sandbox_stack.logs(stub, sandbox.id)
    await first.stop(grace=0.5)
    _second, stub = await sandbox_stack.start()
    after = await sandbox_stack.logs(stub, sandbox.id, follow=True)
    assert [(e.seq, e.stream, e.text) for e in after] == [(e.seq, e.stream, e.text) for e in before]
    assert [e.text for e in after if e.stream == S.LOG_STREAM_STDOUT] == [
        str(i) for i in range(700)
    ]


async def test_sigkill_of_the_service_mid_run_then_restart(sandbox_stack):
    """A real `mleb serve sandbox` process is SIGKILLed while an agent runs; the next one
    adopts the agent, keeps the log gapless and duplicate-free, and finishes the record."""
    env = sandbox_stack.served_env(MLEB_SANDBOX_QUEUE_POLL_INTERVAL_S="0.2")
    async with sandbox_stack.served(env) as (first, stub):
        sandbox = await sandbox_stack.create(stub, agent(TICKER))
        await wait_for_line(sandbox_stack, stub, sandbox.id, "tick 4")
        await sigkill(first)
    async with sandbox_stack.served(env) as (second, stub):
        done = await sandbox_stack.wait_for(stub, sandbox.id)
        assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
        assert done.submission_collected
        assert_ticks_once(await sandbox_stack.logs(stub, sandbox.id))
        assert second.terminate() == 0


async def test_lifecycle_lines_survive_a_sigkill_right_after_running(sandbox_stack):
    """A service killed the moment its sandbox is RUNNING keeps the "running" line: lifecycle
    lines are stored before the state they announce (issue 16, item 5)."""
    env = sandbox_stack.served_env()
    async with sandbox_stack.served(env) as (first, stub):
        sandbox = await sandbox_stack.create(stub, agent(TICKER))
        async with asyncio.timeout(30):
            while (await sandbox_stack.get(stub, sandbox.id)).state != S.SANDBOX_STATE_RUNNING:
                await asyncio.sleep(0.01)
        await sigkill(first)
    async with sandbox_stack.served(env) as (second, stub):
        done = await sandbox_stack.wait_for(stub, sandbox.id)
        assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
        entries = await sandbox_stack.logs(stub, sandbox.id)
        lifecycle = [e.text for e in entries if e.stream == S.LOG_STREAM_SYSTEM]
        assert any(t.startswith("running (time limit") for t in lifecycle), lifecycle
        assert any(t.startswith("re-attached") for t in lifecycle), lifecycle
        assert_ticks_once(entries)
        assert second.terminate() == 0
