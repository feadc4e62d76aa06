"""20 concurrent sandboxes through the full gRPC service on this machine, none lost.

    PYTHONPATH=. .venv/bin/python bench/sandbox/bench_service_concurrency.py [--count 20]

Registry, grader and sandbox run in this process (the demo's stack: SQLite, Docker
backend); each sandbox runs a busybox agent that sleeps, copies the sample submission and
prints "done". Baseline: one sandbox alone, measured in the same run. Needs the images from
scripts/build_test_images.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from google.protobuf import duration_pb2
from mleb.client import NO_DEADLINE, AsyncClient
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.builtin.catalog import DEMO_COMPETITION
from services.demo import DemoStack

AGENT = [
    "sh",
    "-c",
    "sleep 3; cp /home/data/sample_submission.csv /home/submission/submission.csv; echo done",
]


async def one(client: AsyncClient) -> dict[str, float | bool]:
    asked = time.perf_counter()
    request = sandbox_service_pb2.CreateSandboxRequest(
        competition_id=DEMO_COMPETITION,
        image="mleb-test-busybox",
        command=AGENT,
        time_limit=duration_pb2.Duration(seconds=300),
        resources=sandbox_pb2.Resources(cpus=0.5, memory_bytes=128 * 1024**2),
    )
    sandbox = (await client.create_sandbox(request)).sandbox
    lines = [
        entry.text
        async for batch in client.stream_logs(sandbox.id, follow=True, timeout=NO_DEADLINE)
        for entry in batch.entries
    ]
    ended = time.perf_counter()
    sandbox = (await client.get_sandbox(sandbox.id)).sandbox
    started = sandbox.started_at.ToDatetime() - sandbox.created_at.ToDatetime()
    return {
        "ok": sandbox.state == sandbox_pb2.SANDBOX_STATE_SUCCEEDED
        and sandbox.submission_collected
        and "done" in lines,
        "create_to_running_s": started.total_seconds(),
        "create_to_end_s": ended - asked,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mleb-bench-") as root:
        Path(root).chmod(0o711)
        stack = DemoStack(Path(root), "docker")
        await stack.start()
        try:
            await asyncio.to_thread(stack.import_builtins)
            async with stack.client() as client:
                alone = await one(client)
                started = time.perf_counter()
                results = await asyncio.gather(
                    *(one(client) for _ in range(args.count)), return_exceptions=True
                )
                wall = time.perf_counter() - started
        finally:
            await stack.stop()
    done = [r for r in results if isinstance(r, dict) and r["ok"]]
    running = statistics.median(r["create_to_running_s"] for r in done)
    end = statistics.median(r["create_to_end_s"] for r in done)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}\n")
    print("| measure | one sandbox alone | median of the concurrent ones | ratio |")
    print("|---|---|---|---|")
    print(
        f"| create-to-running | {alone['create_to_running_s']:.2f} s | {running:.2f} s | "
        f"{running / alone['create_to_running_s']:.2f}x |"
    )
    print(
        f"| create-to-end (agent sleeps 3 s) | {alone['create_to_end_s']:.2f} s | {end:.2f} s | "
        f"{end / alone['create_to_end_s']:.2f}x |"
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    print(
        f"\n{args.count} concurrent sandboxes through the service: {len(done)}/{args.count} "
        f"succeeded with their output and submission; wall {wall:.1f} s"
        + (f"; errors: {errors[:3]}" if errors else "")
    )


if __name__ == "__main__":
    asyncio.run(main())
