"""The local-process backend with real processes: output, exit, limits, user, stop, re-attach."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from services.sandbox.backends.base import BackendError, LaunchSpec, NetworkMode, OutputStream
from services.sandbox.backends.local.backend import SHIM_PID_FILE, LocalBackend, _alive
from services.sandbox.node.layout import host_layout

LABELS = {"mleb.instance": "test-local"}
# As root the agent runs as nobody, who cannot reach a Python under root's home.
AGENT_PYTHON = "/usr/bin/python3" if os.geteuid() == 0 else sys.executable
SECRET = "local-secret-value-8c1f"


def spec(root: Path, sandbox_id: str, code: str, **overrides) -> LaunchSpec:
    layout = host_layout(root / sandbox_id)
    for folder in (layout.data_dir, layout.submission_dir, layout.logs_dir, layout.code_dir,
                   layout.sockets_dir):  # fmt: skip
        folder.mkdir(parents=True)
        folder.chmod(0o777)
    values = dict(
        sandbox_id=sandbox_id, competition_id="comp", image="", command=[AGENT_PYTHON, "-c", code],
        env={"PLAIN": "1", "SECRET": SECRET}, cpus=1.0, memory_bytes=1 << 30, shm_bytes=0,
        pids_limit=256, gpu_uuids=["GPU-a", "GPU-b"], network=NetworkMode.NONE, allowed_hosts=[],
        layout=layout, mlebench_compat=False, labels=LABELS, time_limit_s=60.0,
    )  # fmt: skip
    values.update(overrides)
    return LaunchSpec(**values)


async def collect(backend, handle, since=0.0):
    return [line async for line in backend.output(handle, since)]


async def test_runs_reports_output_exit_and_usage(open_tmp):
    backend = LocalBackend(open_tmp / "runs")
    code = (
        "import os, sys\n"
        "print('hello'); print('oops', file=sys.stderr)\n"
        "print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['MLEB_GRADER_ADDR'])\n"
        "print(os.environ['SUBMISSION_DIR'], os.getcwd())\n"
        "open(os.path.join(os.environ['SUBMISSION_DIR'], 'submission.csv'), 'w').write('a\\n')\n"
        "print('uid', os.getuid())\n"
        "sum(range(3_000_000))\n"
        "sys.exit(3)\n"
    )
    launch = spec(open_tmp, "sbx-run", code)
    handle = await backend.launch(launch)
    exit_info = await asyncio.wait_for(backend.wait(handle), 30)
    lines = await collect(backend, handle)
    assert exit_info.exit_code == 3 and not exit_info.oom_killed
    texts = [(line.stream, line.text) for line in lines]
    assert (OutputStream.STDOUT, "hello") in texts and (OutputStream.STDERR, "oops") in texts
    layout = launch.layout
    assert (OutputStream.STDOUT, f"GPU-a,GPU-b unix:{layout.sockets_dir / 'grader.sock'}") in texts
    assert (OutputStream.STDOUT, f"{layout.submission_dir} {layout.root}") in texts
    if os.geteuid() == 0:
        assert (OutputStream.STDOUT, "uid 65534") in texts  # nobody, never root
    assert (layout.submission_dir / "submission.csv").read_text() == "a\n"
    usage = await backend.usage(handle)
    assert usage.cpu_seconds > 0 and usage.peak_memory_bytes > 0
    # The spec's secret reaches the process, never the run folder on disk.
    run_dir = open_tmp / "runs" / "sbx-run"
    assert all(SECRET.encode() not in p.read_bytes() for p in run_dir.iterdir() if p.is_file())
    await backend.remove(handle)
    assert not run_dir.exists()


async def test_rlimits_apply_to_the_agent(open_tmp):
    backend = LocalBackend(open_tmp / "runs")
    code = (
        "import resource\n"
        "names = ('RLIMIT_NPROC', 'RLIMIT_CPU')\n"
        "limits = [resource.getrlimit(getattr(resource, n))[0] for n in names]\n"
        "print(*limits, flush=True)\n"
        "blob = bytearray(400 * 1024 * 1024)\n"
        "print('allocated')\n"
    )
    handle = await backend.launch(spec(open_tmp, "sbx-limits", code, memory_bytes=256 << 20,
                                       pids_limit=64, time_limit_s=10.0))  # fmt: skip
    exit_info = await asyncio.wait_for(backend.wait(handle), 30)
    lines = await collect(backend, handle)
    texts = [line.text for line in lines]
    # stdout and stderr are read by separate threads, so only each stream's own order holds.
    stdout = [line.text for line in lines if line.stream == OutputStream.STDOUT]
    assert stdout == [f"64 {10 + 60}"]
    assert "allocated" not in texts and any("MemoryError" in t for t in texts)
    assert exit_info.exit_code != 0
    await backend.remove(handle)


async def test_stop_is_graceful_then_kills(open_tmp):
    backend = LocalBackend(open_tmp / "runs")
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: print('got TERM, ignoring', flush=True))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    handle = await backend.launch(spec(open_tmp, "sbx-stop", code))
    lines = backend.output(handle)
    assert (await anext(lines)).text == "ready"
    started = time.monotonic()
    await backend.stop(handle, grace_s=1.0)
    exit_info = await asyncio.wait_for(backend.wait(handle), 10)
    assert time.monotonic() - started >= 1.0
    assert exit_info.exit_code == 128 + 9
    assert (await anext(lines)).text == "got TERM, ignoring"
    await backend.stop(handle, grace_s=1.0)  # idempotent
    await backend.remove(handle)


async def test_agents_outlive_the_backend_and_are_reattached(open_tmp):
    first = LocalBackend(open_tmp / "runs")
    code = "import time\nfor i in range(6):\n    print(f'tick {i}', flush=True); time.sleep(0.3)\n"
    handle = await first.launch(spec(open_tmp, "sbx-adopt", code))
    seen = []
    async for line in first.output(handle):
        seen.append(line)
        if len(seen) == 2:
            break
    # A new backend (the restarted service) finds the agent still running.
    second = LocalBackend(open_tmp / "runs")
    owned = await second.list_owned(LABELS)
    assert [(h.sandbox_id, running) for h, running in owned] == [("sbx-adopt", True)]
    assert await second.list_owned({"mleb.instance": "someone-else"}) == []
    adopted = owned[0][0]
    rest = [line async for line in second.output(adopted, since=seen[-1].time)]
    texts = [line.text for line in seen] + [line.text for line in rest if line.time > seen[-1].time]
    assert texts == [f"tick {i}" for i in range(6)]
    assert (await second.wait(adopted)).exit_code == 0
    assert [running for _h, running in await second.list_owned(LABELS)] == [False]
    await second.remove(adopted)
    assert await second.list_owned(LABELS) == []


async def test_a_command_that_cannot_start_is_a_runtime_error(open_tmp):
    backend = LocalBackend(open_tmp / "runs")
    with pytest.raises(BackendError) as err:
        await backend.launch(spec(open_tmp, "sbx-bad", "", command=["/nonexistent/agent"]))
    assert err.value.reason == "RUNTIME_ERROR"
    with pytest.raises(BackendError):
        await backend.launch(spec(open_tmp, "sbx-empty", "", command=[]))


async def test_a_folder_the_agent_cannot_enter_is_refused_clearly(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root drops to another user")
    # pytest's tmp_path sits under a folder closed to other users.
    backend = LocalBackend(tmp_path / "runs")
    with pytest.raises(BackendError, match="MLEB_SANDBOX_WORK_DIR"):
        await backend.launch(spec(tmp_path, "sbx-closed", "print(1)"))


async def test_removing_a_running_agent_leaves_no_folder_even_from_another_service(open_tmp):
    """The killed agent's runner writes its end into the run folder: remove() waits for it,
    whether this backend or a former service started it, so nothing is written after the
    folder is gone (the folder once survived, with only the exit record in it)."""
    runs = open_tmp / "runs"
    for i in range(12):
        starter, remover = LocalBackend(runs), LocalBackend(runs)
        handle = await starter.launch(
            spec(open_tmp, f"sbx-rm-{i}", "import time; print('up', flush=True); time.sleep(60)")
        )
        async with asyncio.timeout(20):
            while not (runs / handle.sandbox_id / "agent.pid").exists():
                await asyncio.sleep(0.01)
        runner = int((runs / handle.sandbox_id / SHIM_PID_FILE).read_text())
        await (remover if i % 2 else starter).remove(handle)
        # The runner has ended (a zombie at most) by the time remove() returns.
        assert not _alive(runner), i
        assert not (runs / handle.sandbox_id).exists(), i
        await starter.remove(handle)  # reaps the starter's own child; the folder is gone
