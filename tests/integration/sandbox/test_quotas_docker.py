"""Disk and log quotas against hostile agents in real Docker sandboxes.

Each test is an attack that worked once: writing gigabytes into /home/logs (a host bind
mount), into /tmp and elsewhere in the container's writable layer, a sparse file that costs
nothing on disk but gigabytes in an archive, and flooding stdout into the database.
"""

from __future__ import annotations

import pytest
from mleb.sandbox.v1 import sandbox_pb2

from services.sandbox.lifecycle.logs import LINE_OVERHEAD_BYTES, MAX_LINE_CHARS

pytestmark = pytest.mark.docker
S = sandbox_pb2
PYTHON = "mleb-test-python"
MIB = 1024**2

# Writes `MIB_TO_WRITE` MiB of random bytes (so nothing can compress or dedupe them) into
# TARGET, one MiB at a time, reports how far it got, then stays alive until stopped.
WRITER = r"""
import errno, os, sys, time
target, total = os.environ["TARGET"], int(os.environ["MIB_TO_WRITE"])
os.makedirs(os.path.dirname(target), exist_ok=True)
written = 0
try:
    with open(target, "wb") as handle:
        for _ in range(total):
            handle.write(os.urandom(1 << 20))
            handle.flush()
            written += 1
except OSError as exc:
    print("write failed:", errno.errorcode.get(exc.errno, exc.errno), flush=True)
print("written MiB", written, flush=True)
time.sleep(float(os.environ.get("LINGER_S", "0")))
"""

QUICK_WATCHDOG = {"disk_check_interval_s": 0.5}


def _resources(**fields) -> sandbox_pb2.Resources:
    return sandbox_pb2.Resources(**fields)


async def _run_writer(docker_stack, target: str, mib: int, linger_s: float, **resources):
    _server, stub = await docker_stack.start(**QUICK_WATCHDOG)
    sandbox = await docker_stack.create(
        stub,
        ["python3", "-c", WRITER],
        image=PYTHON,
        env={"TARGET": target, "MIB_TO_WRITE": str(mib), "LINGER_S": str(linger_s)},
        resources=_resources(**resources),
    )
    done = await docker_stack.wait_for(stub, sandbox.id, timeout=90)
    texts = [e.text for e in await docker_stack.logs(stub, sandbox.id)]
    return done, texts


@pytest.mark.parametrize(
    "target",
    [
        "/home/logs/flood.bin",  # a host bind mount
        "/home/code/deep/er/flood.bin",
        "/var/tmp/flood.bin",  # the container's writable layer
    ],
)
async def test_writing_past_the_disk_quota_stops_the_sandbox(docker_stack, target):
    done, texts = await _run_writer(docker_stack, target, 48, 60, disk_bytes=16 * MIB)
    assert done.state == S.SANDBOX_STATE_FAILED, (done.failure_message, texts[-5:])
    assert done.failure_reason == S.FAILURE_REASON_DISK_QUOTA_EXCEEDED
    assert done.failure_class == S.FAILURE_CLASS_AGENT
    assert "disk quota of 16777216 bytes exceeded" in done.failure_message
    assert done.disk_enforcement == S.DISK_ENFORCEMENT_WATCHDOG
    assert done.resources.disk_bytes == 16 * MIB
    assert done.usage.peak_disk_bytes > 16 * MIB
    # Stopped long before the agent's own 60 s of lingering ran out.
    assert (done.finished_at.ToDatetime() - done.started_at.ToDatetime()).total_seconds() < 45


async def test_a_sparse_output_file_counts_at_its_apparent_size(docker_stack):
    _server, stub = await docker_stack.start(**QUICK_WATCHDOG)
    sandbox = await docker_stack.create(
        stub,
        ["sh", "-c", "truncate -s 3G /home/submission/sparse.bin && sleep 60"],
        image=PYTHON,
        resources=_resources(disk_bytes=64 * MIB),
    )
    done = await docker_stack.wait_for(stub, sandbox.id, timeout=90)
    assert done.failure_reason == S.FAILURE_REASON_DISK_QUOTA_EXCEEDED, done.failure_message
    assert done.usage.peak_disk_bytes >= 3 * 1024**3


async def test_tmp_is_a_tmpfs_inside_the_memory_budget(docker_stack):
    done, texts = await _run_writer(
        docker_stack,
        "/tmp/flood.bin",
        96,
        0,
        memory_bytes=256 * MIB,
        tmp_bytes=32 * MIB,
        disk_bytes=16 * MIB,
    )
    # The kernel refused the writes past 32 MiB; nothing reached the disk, so the disk quota
    # (16 MiB) was never touched.
    assert "write failed: ENOSPC" in texts, texts[-5:]
    written = next(int(t.split()[-1]) for t in texts if t.startswith("written MiB"))
    assert 16 <= written <= 32, written
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert done.resources.tmp_bytes == 32 * MIB
    assert done.usage.peak_disk_bytes < 16 * MIB


async def test_tmp_defaults_to_half_the_memory_limit(docker_stack):
    _server, stub = await docker_stack.start()
    sandbox = await docker_stack.create(
        stub,
        ["sh", "-c", "grep ' /tmp ' /proc/mounts"],
        image=PYTHON,
        resources=_resources(memory_bytes=512 * MIB),
    )
    done = await docker_stack.wait_for(stub, sandbox.id, timeout=60)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    assert done.resources.tmp_bytes == 256 * MIB
    mount = next(e.text for e in await docker_stack.logs(stub, sandbox.id) if " /tmp " in e.text)
    assert mount.startswith("tmpfs /tmp tmpfs") and "size=262144k" in mount, mount
    assert "nosuid" in mount and "nodev" in mount, mount


FLOOD = r"""
import sys
line = "x" * 1000
for i in range(5000):
    print(f"{i:05d} {line}")
print("y" * 1_000_000)
sys.stdout.flush()
"""


async def test_stdout_past_the_log_budget_is_dropped_after_one_marker(docker_stack):
    budget = 256 * 1024
    _server, stub = await docker_stack.start()
    sandbox = await docker_stack.create(
        stub,
        ["python3", "-c", FLOOD],
        image=PYTHON,
        resources=_resources(log_bytes=budget),
    )
    done = await docker_stack.wait_for(stub, sandbox.id, timeout=90)
    assert done.state == S.SANDBOX_STATE_SUCCEEDED, done.failure_message
    entries = await docker_stack.logs(stub, sandbox.id)
    agent = [e for e in entries if e.stream != S.LOG_STREAM_SYSTEM]
    system = [e.text for e in entries if e.stream == S.LOG_STREAM_SYSTEM]
    charged = sum(len(e.text.encode()) + LINE_OVERHEAD_BYTES for e in agent)
    assert charged <= budget
    assert done.usage.log_bytes == charged
    # Everything past the budget was dropped and counted; a 1 MB line is more than one
    # engine frame, so it may count as several lines.
    assert agent and len(agent) < 5000
    assert done.usage.log_lines_dropped >= 5001 - len(agent)
    markers = [t for t in system if t.startswith("agent output truncated")]
    assert len(markers) == 1, markers
    # Lifecycle lines still come after the budget is spent, whole.
    assert system[-1].startswith("finished: SUCCEEDED"), system[-3:]
    assert done.resources.log_bytes == budget
    assert all(len(e.text) <= MAX_LINE_CHARS + 64 for e in entries)
