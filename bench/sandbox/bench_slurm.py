"""Many GPU sandboxes queued in Slurm: 20 sandboxes of one GPU each, created at once through
the gRPC service, on the one-node dev cluster of scripts/dev_slurm.sh (two fake GPUs).

    eval "$(MLEB_DEV_CLUSTER_DIR=/tmp/mleb-dev-slurm-bench bash scripts/dev_slurm.sh start)"
    PYTHONPATH=clients/python/src:. .venv/bin/python bench/sandbox/bench_slurm.py \
        [--count 20] [--hold 3] [--repeats 5] [--poll 1.0 0.25]

Registry, grader and sandbox service run in this process (DemoStack) on the Slurm backend,
one stack per MLEB_SLURM_POLL_INTERVAL_S given. Each agent (busybox `sleep HOLD`) holds its
GPU for HOLD seconds. From the service's records (created_at, started_at = RUNNING,
finished_at, the GPU Slurm allocated):

- queue wait (created to RUNNING) p50/p99/max of the burst;
- create-to-running of the burst's first two (a GPU free for each), and of one sandbox alone
  (median of --repeats), against a hardened `docker run -d` of the same image with the
  agent's security options, memory, CPUs and GPU device, taking turns with the lone sandbox;
- GPU occupancy while work was queued: GPU-seconds of RUNNING sandboxes / (2 x the span from
  the first creation to the last start, when some sandbox was PENDING); also with the agents'
  own container lifetimes (Docker's start and die events) as the busy time;
- makespan (first creation to last finish) against the ideal, COUNT x HOLD / 2;
- the hand-off, a GPU going from one sandbox to the next on it: the earlier one's finished_at
  to the later one's started_at, median; and its parts, from Docker's events and the
  millisecond stamps of slurmctld's and slurmd's logs: the agent's exit to its job's end
  (the node runner exiting, or the service's scancel), that to Slurm's start of the next job
  (its scheduling: backfill runs every bf_interval), that to slurmd's launch of the batch
  script, that to the sidecar's start (the runner starting), to the agent's start, and to
  RUNNING recorded (the runner's started.json read on the service's poll); the same parts
  of a lone start, from its creation;
- the CPU time of the Slurm commands the service runs (sbatch, squeue, scancel) during the
  burst: each PENDING sandbox polls squeue.

Needs the images from scripts/build_test_images.sh and readable SlurmctldLogFile and
SlurmdLogFile (the dev cluster's). Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
from google.protobuf import duration_pb2
from mleb.client import AsyncClient
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from bench.sandbox.bench_sandbox import BENCH_LABEL, SECURE_RUN, percentile, remove_bench_containers
from services.builtin.catalog import DEMO_COMPETITION
from services.demo import DemoStack

REPO = Path(__file__).resolve().parents[2]
IMAGE = "mleb-test-busybox"
GPUS = 2  # dev_slurm.sh's node
# The node has 4096 MB and each job asks this plus the runner's 256 MiB: GPUs, not memory,
# must be what queues the jobs.
MEMORY_BYTES = 256 * 1024**2
CPUS = 0.5
S = sandbox_pb2
ENDED = {
    S.SANDBOX_STATE_SUCCEEDED, S.SANDBOX_STATE_FAILED, S.SANDBOX_STATE_TIMED_OUT,
    S.SANDBOX_STATE_CANCELLED,
}  # fmt: skip
# The logs' lines (LogTimeFormat iso8601_ms) for a job's submission, its start (by either
# scheduler), slurmd's launch of its batch script, and its end: its own, or a scancel (the
# service's, of a job whose runner had not exited yet), which frees its GPU at once too.
CONTROLLER, NODE = "SlurmctldLogFile", "SlurmdLogFile"
JOB_LINES = {
    "submitted": (CONTROLLER, r"_slurm_rpc_submit_batch_job: JobId=(\d+) "),
    "started": (
        CONTROLLER,
        r"(?:sched/backfill: _start_job: Started|sched: Allocate) JobId=(\d+) ",
    ),
    "launched": (NODE, r"Launching batch job (\d+) "),
    "completed": (CONTROLLER, r"_job_complete: JobId=(\d+) done"),
    "cancelled": (CONTROLLER, r"_slurm_rpc_kill_job: REQUEST_KILL_JOB JobId=(\d+) "),
}


@dataclass(frozen=True)
class Run:
    """One sandbox's times (epoch seconds) and the GPU Slurm gave it."""

    sandbox_id: str
    created: float
    started: float
    finished: float
    gpu: str
    ok: bool


def seconds(stamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def slurm(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def slurm_logs() -> dict[str, Path]:
    """The controller's and the node's log files."""
    logs = {}
    for line in slurm("scontrol", "show", "config").splitlines():
        name, _, value = line.partition("=")
        if name.strip() in (CONTROLLER, NODE):
            logs[name.strip()] = Path(value.strip())
    if len(logs) != 2:
        raise SystemExit(f"scontrol names no {CONTROLLER} and {NODE}: the splits need them")
    return logs


def stamp(text: str) -> float:
    """A naive stamp of Slurm's logs: the local time, as this process's is."""
    return datetime.fromisoformat(text).timestamp()


def job_events(logs: dict[str, Path], offsets: dict[str, int]) -> dict[str, dict[str, float]]:
    """Event -> job id -> when, the first of each, from the logs past their offsets."""
    found: dict[str, dict[str, float]] = {event: {} for event in JOB_LINES}
    for log, path in logs.items():
        patterns = {
            event: re.compile(r"^\[([^\]]+)\] " + line)
            for event, (source, line) in JOB_LINES.items()
            if source == log
        }
        with open(path, errors="replace") as lines:
            lines.seek(offsets[log])
            for line in lines:
                for event, pattern in patterns.items():
                    if match := pattern.match(line):
                        found[event].setdefault(match[2], stamp(match[1]))
                        break
    ends = found["completed"].items() | found["cancelled"].items()
    found["ended"] = {}
    for job_id, when in sorted(ends, key=lambda item: item[1]):
        found["ended"].setdefault(job_id, when)
    return found


def job_ids(instance_id: str, states: str = "all") -> dict[str, str]:
    """Sandbox id -> Slurm job id, for this service instance's jobs (its comment)."""
    out = slurm("squeue", "--noheader", f"--states={states}", "-o", "%i|%j|%k")
    jobs = {}
    for line in out.splitlines():
        job_id, name, comment = line.split("|", 2)
        if name.startswith("mleb-") and comment.endswith(f"/{instance_id}"):
            jobs[name.removeprefix("mleb-")] = job_id
    return jobs


def cancel_leftovers(instance_id: str) -> None:
    """A run that failed midway must not leave jobs holding the cluster's GPUs."""
    jobs = list(job_ids(instance_id, "pending,running").values())
    if jobs:
        subprocess.run(["scancel", *jobs], check=False, capture_output=True)


@contextlib.contextmanager
def container_events(instance_id: str) -> Iterator[dict[str, dict[str, float]]]:
    """The agents' and sidecars' start and die times (Docker's events, nanosecond stamps) of
    one service instance's sandboxes while the block runs, filled in when it ends:
    sandbox id -> {"agent start": t, "agent die": t, "sidecar start": t, ...}."""
    found: dict[str, dict[str, float]] = defaultdict(dict)
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            ["docker", "events", "--format", "{{json .}}", "--filter", "type=container",
             "--filter", "event=start", "--filter", "event=die",
             "--filter", f"label=mleb.instance={instance_id}"],
            stdout=out,
        )  # fmt: skip
        try:
            yield found
        finally:
            time.sleep(0.5)  # the last events' lines
            process.terminate()
            process.wait()
        out.seek(0)
        for raw in out.read().decode().splitlines():
            event = json.loads(raw)
            labels = event["Actor"]["Attributes"]
            role = labels["mleb.role"]
            found[labels["mleb.sandbox.id"]][f"{role} {event['Action']}"] = event["timeNano"] / 1e9


def docker_run(gpu_device: str) -> float:
    """A hardened `docker run -d` of the agent's image with its memory, CPUs and GPU device,
    timed from the call to its return (the container runs)."""
    start = time.perf_counter()
    subprocess.run(
        ["docker", "run", "-d", "--label", f"{BENCH_LABEL}=1", *SECURE_RUN,
         "--cpus", str(CPUS), "--memory", str(MEMORY_BYTES), "--device", gpu_device,
         "--entrypoint", "sleep", IMAGE, "60"],
        check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - start


def request(hold: float, tag: str) -> sandbox_service_pb2.CreateSandboxRequest:
    return sandbox_service_pb2.CreateSandboxRequest(
        competition_id=DEMO_COMPETITION,
        image=IMAGE,
        command=["sleep", f"{hold:g}"],
        time_limit=duration_pb2.Duration(seconds=300),
        resources=S.Resources(cpus=CPUS, memory_bytes=MEMORY_BYTES, gpu_count=1),
        labels={"mleb.bench": tag},
    )


async def run_all(client: AsyncClient, count: int, hold: float) -> list[Run]:
    """`count` sandboxes created at once, followed to their ends; their records."""
    tag = uuid.uuid4().hex[:12]
    await asyncio.gather(*(client.create_sandbox(request(hold, tag)) for _ in range(count)))
    listing = sandbox_service_pb2.ListSandboxesRequest(labels={"mleb.bench": tag}, page_size=1000)
    while True:
        # The records' own stamps are measured, so this poll's pace does not matter.
        sandboxes = (await client.list_sandboxes(listing)).sandboxes
        if all(s.state in ENDED for s in sandboxes):
            break
        await asyncio.sleep(0.5)
    return [
        Run(
            s.id,
            seconds(s.created_at),
            seconds(s.started_at),
            seconds(s.finished_at),
            ",".join(s.leased_gpu_uuids),
            s.state == S.SANDBOX_STATE_SUCCEEDED and len(s.leased_gpu_uuids) == 1,
        )
        for s in sandboxes
    ]


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def occupancy(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    """GPU-seconds of the busy spans within [lo, hi], over both GPUs' seconds there."""
    busy = sum(max(0.0, min(end, hi) - max(start, lo)) for start, end in spans)
    return busy / (GPUS * (hi - lo))


def hand_offs(runs: list[Run]) -> list[tuple[Run, Run]]:
    """(earlier, next) sandbox pairs on the same GPU, one after the other."""
    by_gpu: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_gpu[run.gpu].append(run)
    pairs = []
    for held in by_gpu.values():
        held.sort(key=lambda r: r.started)
        pairs += list(itertools.pairwise(held))
    return pairs


async def measure(poll: float, args: argparse.Namespace, logs: dict[str, Path]) -> dict[str, Any]:
    instance_id = f"bench-slurm-{uuid.uuid4().hex[:8]}"
    os.environ["MLEB_SANDBOX_INSTANCE_ID"] = instance_id
    os.environ["MLEB_SLURM_POLL_INTERVAL_S"] = f"{poll:g}"
    gpu_device = str(Path(os.environ["MLEB_SLURM_GPU_DEVICE_DIR"]) / "nvidia0")
    engine = docker.from_env(timeout=300)
    with tempfile.TemporaryDirectory(prefix="mleb-bench-") as root:
        Path(root).chmod(0o711)  # the jobs run as their submitter, and reach it from there
        stack = DemoStack(Path(root), "slurm")
        await stack.start()
        try:
            await asyncio.to_thread(stack.import_builtins)
            async with stack.client() as client:
                await run_all(client, 1, 0)  # warms caches (image identity, public data)
                offsets = {name: path.stat().st_size for name, path in logs.items()}
                with container_events(instance_id) as containers:
                    plain, alone = [], []
                    for _ in range(args.repeats):
                        plain.append(await asyncio.to_thread(docker_run, gpu_device))
                        await asyncio.to_thread(remove_bench_containers, engine)
                        alone += await run_all(client, 1, 0)
                    tools = resource.getrusage(resource.RUSAGE_CHILDREN)
                    runs = await run_all(client, args.count, args.hold)
                    tools_after = resource.getrusage(resource.RUSAGE_CHILDREN)
                jobs = job_ids(instance_id)
        finally:
            await stack.stop()
            await asyncio.to_thread(cancel_leftovers, instance_id)
            await asyncio.to_thread(remove_bench_containers, engine)
    slurm_events = job_events(logs, offsets)
    bad = [r.sandbox_id for r in alone + runs if not r.ok]
    if bad:
        raise SystemExit(f"sandboxes that did not succeed with one GPU: {bad}")
    runs.sort(key=lambda r: r.started)
    waits = [r.started - r.created for r in runs]
    first = min(r.created for r in runs)
    queued_until = runs[-1].started  # all were created at once: some PENDING until then
    pairs = hand_offs(runs)

    def container(run: Run, event: str) -> float:
        return containers[run.sandbox_id][event]

    def job(event: str, run: Run) -> float:
        return slurm_events[event][jobs[run.sandbox_id]]

    def launch(r: Run) -> list[tuple[str, float]]:
        """From Slurm's start of a sandbox's job to RUNNING recorded, part by part."""
        return [
            ("slurmd launches the batch script (Slurm)", job("launched", r) - job("started", r)),
            ("the runner starts and starts the sidecar", container(r, "sidecar start")
             - job("launched", r)),
            ("the agent starts", container(r, "agent start") - container(r, "sidecar start")),
            ("RUNNING recorded (started.json read by the service's poll)",
             r.started - container(r, "agent start")),
        ]  # fmt: skip

    def medians(parts: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
        return [
            (label, statistics.median(p[i][1] for p in parts))
            for i, (label, _) in enumerate(parts[0])
        ]

    alone_parts = medians([
        [("created to sbatch's job (the service)", job("submitted", r) - r.created),
         ("submitted to started (Slurm)", job("started", r) - job("submitted", r)),
         *launch(r)]
        for r in alone
    ])  # fmt: skip
    handoff_parts = medians([
        [("the earlier agent's exit to its job's end (runner exit, or the service's scancel)",
          job("ended", a) - container(a, "agent die")),
         ("that to Slurm's start of the next job (Slurm)", job("started", b) - job("ended", a)),
         *launch(b)]
        for a, b in pairs
    ])  # fmt: skip
    return {
        "plain_s": statistics.median(plain),
        "alone_s": statistics.median(r.started - r.created for r in alone),
        "alone_parts": alone_parts,
        "first_two_s": statistics.mean(waits[:GPUS]),
        "wait_p50_s": percentile(waits, 50),
        "wait_p99_s": percentile(waits, 99),
        "wait_max_s": max(waits),
        "occupancy": occupancy([(r.started, r.finished) for r in runs], first, queued_until),
        "agent_occupancy": occupancy(
            [(container(r, "agent start"), container(r, "agent die")) for r in runs],
            first,
            queued_until,
        ),
        "makespan_s": max(r.finished for r in runs) - first,
        # The service's sbatch, squeue and scancel runs, the only children this process had
        # meanwhile.
        "tools_cpu_s": cpu_seconds(tools_after) - cpu_seconds(tools),
        "ideal_s": args.count * args.hold / GPUS,
        "handoff_s": statistics.median(b.started - a.finished for a, b in pairs),
        "agent_gap_s": statistics.median(
            container(b, "agent start") - container(a, "agent die") for a, b in pairs
        ),
        "exit_seen_s": statistics.median(a.finished - container(a, "agent die") for a, _ in pairs),
        "handoff_parts": handoff_parts,
        "pairs": len(pairs),
        "cancelled": sum(
            job("ended", r) == slurm_events["cancelled"].get(jobs[r.sandbox_id]) for r in runs
        ),
    }


def parts_line(parts: list[tuple[str, float]]) -> str:
    return "; ".join(f"{label} {value:.2f} s" for label, value in parts)


def report(poll: float, f: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\n### MLEB_SLURM_POLL_INTERVAL_S={poll:g}\n")
    print(
        "| measure | hardened `docker run -d` | mleb sandbox on Slurm | ratio |\n|---|---|---|---|"
    )
    for name, value in (
        (f"create-to-running, one alone, median of {args.repeats}", f["alone_s"]),
        (f"create-to-running, the first {GPUS} of the {args.count} (a GPU free each), mean",
         f["first_two_s"]),
    ):  # fmt: skip
        print(f"| {name} | {f['plain_s']:.2f} s | {value:.2f} s | {value / f['plain_s']:.2f}x |")
    print(f"\n- one alone, median of each part: {parts_line(f['alone_parts'])}")
    print(
        f"- queue wait (created to RUNNING) of {args.count}: p50 {f['wait_p50_s']:.1f} s, "
        f"p99 {f['wait_p99_s']:.1f} s, max {f['wait_max_s']:.1f} s"
    )
    print(
        f"- GPU occupancy while work was queued: {f['occupancy']:.0%} (RUNNING records), "
        f"{f['agent_occupancy']:.0%} (agent containers alive)"
    )
    print(
        f"- makespan {f['makespan_s']:.1f} s against the ideal {args.count} x {args.hold:g} s / "
        f"{GPUS} = {f['ideal_s']:.0f} s: {f['makespan_s'] / f['ideal_s']:.2f}x; the Slurm "
        f"commands the service ran meanwhile (sbatch, squeue, scancel) took {f['tools_cpu_s']:.1f}"
        f" CPU s, {f['tools_cpu_s'] / f['makespan_s']:.0%} of a core"
    )
    print(
        f"- hand-off on a GPU, median of {f['pairs']}: the earlier sandbox's finished_at to the "
        f"next one's started_at {f['handoff_s']:.2f} s; the earlier agent's exit to the next "
        f"agent's start {f['agent_gap_s']:.2f} s; median of each part: "
        f"{parts_line(f['handoff_parts'])}; the service recorded the earlier one's exit "
        f"{f['exit_seen_s']:.2f} s after it; {f['cancelled']} of the {args.count} jobs were "
        "ended by the service's scancel before their runner exited"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--hold", type=float, default=3.0, help="seconds each agent holds its GPU")
    parser.add_argument("--repeats", type=int, default=5, help="lone starts, for medians")
    parser.add_argument("--poll", type=float, nargs="+", default=[1.0, 0.25],
                        help="MLEB_SLURM_POLL_INTERVAL_S values, one stack each")  # fmt: skip
    args = parser.parse_args()
    for name in ("SLURM_CONF", "MLEB_SLURM_PARTITION", "MLEB_SLURM_GPU_DEVICE_DIR"):
        if not os.environ.get(name):
            raise SystemExit(f"{name} is not set: start the cluster with scripts/dev_slurm.sh")
    # The jobs run the node runner from their own folder: this checkout must be on their path.
    os.environ["PYTHONPATH"] = f"{REPO / 'clients/python/src'}{os.pathsep}{REPO}"
    logs = slurm_logs()
    load = os.getloadavg()[0]
    figures = {poll: await measure(poll, args, logs) for poll in args.poll}
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
        f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after; "
        f"{slurm('sinfo', '-V').strip()}, sched/backfill bf_interval=1"
    )
    for poll, found in figures.items():
        report(poll, found, args)


if __name__ == "__main__":
    asyncio.run(main())
