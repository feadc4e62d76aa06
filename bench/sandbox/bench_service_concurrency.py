"""Many concurrent sandboxes through the full gRPC service, against as many plain hardened
`docker run -d` calls in the same run; and the service's memory while they all stream logs.

    PYTHONPATH=. .venv/bin/python bench/sandbox/bench_service_concurrency.py [--count 50]

Registry, grader and sandbox run in this process (the demo's stack: SQLite, Docker
backend); each sandbox runs a busybox agent that sleeps, prints a few thousand lines, copies
the sample submission and prints "done", and each has its own client following its log
(StreamLogs) to the end. Figures:

- create-to-running (created_at to started_at, as the service records them) of one sandbox
  alone, and p50/p99 of `--count` created at once;
- the baseline, measured first: `--count` concurrent `docker run -d` of the same image with
  the sandbox's security options (numeric user, every capability dropped, no-new-privileges, init, a
  /tmp tmpfs), each timed from the call to its exit, as `docker run -d` returns once the
  container runs; and one alone (median of `--repeats`, as for the lone sandbox);
- where the time goes: each start's phases as the service logs them (sandbox_created,
  sandbox_start_phases, sandbox_engine_phases), p50 and max over the concurrent starts;
- VmRSS sampled through the run and VmHWM at its end, for this process (the three services
  and the clients: an upper bound for the sandbox service alone).

Needs the images from scripts/build_test_images.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import docker
import structlog
from google.protobuf import duration_pb2
from mleb.client import NO_DEADLINE, AsyncClient
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

import services.common.logging
from bench.sandbox.bench_sandbox import BENCH_LABEL, SECURE_RUN, percentile, remove_bench_containers
from services.builtin.catalog import DEMO_COMPETITION
from services.demo import DemoStack

IMAGE = "mleb-test-busybox"
LINES = 2000
AGENT = [
    "sh",
    "-c",
    f"sleep 3; seq 1 {LINES}; cp /home/data/sample_submission.csv "
    "/home/submission/submission.csv; echo done",
]


PHASE_EVENTS = ("sandbox_created", "sandbox_start_phases", "sandbox_engine_phases")


def capture_phases() -> dict[str, list[dict[str, float]]]:
    """Keeps the services' phase lines and drops every other log line; before they start,
    so this configuration is the one their loggers take."""
    kept: dict[str, list[dict[str, float]]] = {name: [] for name in PHASE_EVENTS}

    def keep(_logger: object, _method: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        if event.get("event") in kept:
            kept[event["event"]].append({k: v for k, v in event.items() if k.endswith("_ms")})
        raise structlog.DropEvent

    structlog.configure(
        processors=[keep], wrapper_class=structlog.make_filtering_bound_logger(logging.INFO)
    )
    services.common.logging._configured = True  # the servers must not reconfigure it
    return kept


def phase_table(kept: dict[str, list[dict[str, float]]], last: int) -> list[str]:
    rows = ["| phase | p50 | max |", "|---|---|---|"]
    for event in PHASE_EVENTS:
        starts = kept[event][-last:]
        for name in starts[0] if starts else {}:
            values = [start[name] for start in starts if name in start]
            rows.append(
                f"| {event}: {name.removesuffix('_ms')} | {percentile(values, 50):.0f} ms | "
                f"{max(values):.0f} ms |"
            )
    return rows


def memory_kib() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB."""
    figures = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            figures[name] = int(value.split()[0])
    return figures


async def one(client: AsyncClient) -> dict[str, float | bool]:
    request = sandbox_service_pb2.CreateSandboxRequest(
        competition_id=DEMO_COMPETITION,
        image=IMAGE,
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
    sandbox = (await client.get_sandbox(sandbox.id)).sandbox
    started = sandbox.started_at.ToDatetime() - sandbox.created_at.ToDatetime()
    return {
        "ok": sandbox.state == sandbox_pb2.SANDBOX_STATE_SUCCEEDED
        and sandbox.submission_collected
        and "done" in lines
        and str(LINES) in lines,
        "create_to_running_s": started.total_seconds(),
    }


async def plain_run() -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "docker", "run", "-d", "--label", f"{BENCH_LABEL}=1", *SECURE_RUN,
        "--cpus", "0.5", "--memory", str(128 * 1024**2),
        "--entrypoint", "sleep", IMAGE, "60",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(err.decode())
    return time.perf_counter() - started


async def plain(count: int, repeats: int) -> tuple[float, list[float]]:
    engine = docker.from_env(timeout=300)
    alone = []
    for _ in range(repeats):
        alone.append(await plain_run())
        await asyncio.to_thread(remove_bench_containers, engine)
    many = await asyncio.gather(*(plain_run() for _ in range(count)))
    await asyncio.to_thread(remove_bench_containers, engine)
    return statistics.median(alone), list(many)


async def sample_rss(peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], memory_kib()["VmRSS"])
        await asyncio.sleep(0.2)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5, help="lone starts, for medians")
    args = parser.parse_args()
    kept = capture_phases()
    # The baseline first, on an engine with nothing else to do.
    plain_alone, plain_many = await plain(args.count, args.repeats)
    with tempfile.TemporaryDirectory(prefix="mleb-bench-") as root:
        Path(root).chmod(0o711)
        stack = DemoStack(Path(root), "docker")
        await stack.start()
        try:
            await asyncio.to_thread(stack.import_builtins)
            async with stack.client() as client:
                await one(client)  # warms caches (image identity, public data)
                alone = statistics.median(
                    [float((await one(client))["create_to_running_s"]) for _ in range(args.repeats)]
                )
                idle_kib = memory_kib()["VmRSS"]
                peak, stop = [idle_kib], asyncio.Event()
                sampler = asyncio.create_task(sample_rss(peak, stop))
                started = time.perf_counter()
                results = await asyncio.gather(
                    *(one(client) for _ in range(args.count)), return_exceptions=True
                )
                wall = time.perf_counter() - started
                stop.set()
                await sampler
                hwm_kib = memory_kib()["VmHWM"]
        finally:
            await stack.stop()
    done = [r for r in results if isinstance(r, dict) and r["ok"]]
    ours = [float(r["create_to_running_s"]) for r in done]
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}\n")
    print("| measure | hardened `docker run -d` | mleb sandbox through gRPC | ratio |")
    print("|---|---|---|---|")
    print(
        f"| create-to-running, one alone, median of {args.repeats} | {plain_alone:.2f} s | "
        f"{alone:.2f} s | {alone / plain_alone:.2f}x |"
    )
    for q in (50, 99):
        base, mine = percentile(plain_many, q), percentile(ours, q)
        print(
            f"| create-to-running p{q} of {args.count} at once | {base:.2f} s | {mine:.2f} s | "
            f"{mine / base:.2f}x |"
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    print(
        f"\n{args.count} concurrent sandboxes through the service: {len(done)}/{args.count} "
        f"succeeded with their {LINES + 1} lines and submission; wall {wall:.1f} s"
        + (f"; errors: {errors[:3]}" if errors else "")
    )
    print(f"\nPhases of the {args.count} concurrent starts:\n")
    print("\n".join(phase_table(kept, args.count)))
    print(
        f"\nProcess memory (registry, grader, sandbox service and {args.count} log clients): "
        f"VmRSS {idle_kib / 1024:.0f} MiB after one sandbox, peak sampled "
        f"{peak[0] / 1024:.0f} MiB with {args.count} streaming, VmHWM {hwm_kib / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    asyncio.run(main())
