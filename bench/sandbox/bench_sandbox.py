"""Sandbox benchmark on the real Docker engine, each figure against a baseline from the same run.

    PYTHONPATH=. .venv/bin/python bench/sandbox/bench_sandbox.py [--repeats 10] [--lines 100000]

- create-to-running: DockerBackend.launch (endpoints + sidecar + agent) against a plain
  `docker run -d` of the same image with the same security options (numeric non-root
  user, every capability dropped, no-new-privileges, init, a /tmp tmpfs), medians; once
  for a plain image, once for an MLE-bench image in compat mode (whose /home the service
  rewrites); and the sidecar by itself, whose start the agent's must follow (it joins the
  sidecar's network namespace);
- log throughput: DockerBackend.output (streams apart, timestamps) against the docker SDK's
  merged `logs(stream=True, follow=True)`, lines per second;
- end-to-end line latency: a line's write time inside the container to its arrival here,
  p50/p99, against the SDK's stream;
- 20 concurrent sandboxes through the backend and endpoints: none may be lost.

Needs the images from scripts/build_test_images.sh. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import docker
import docker.errors

from services.common.auth import Role, TokenAuthority
from services.common.settings import Settings
from services.sandbox.backends.base import Handle, LaunchSpec
from services.sandbox.backends.docker.backend import DockerBackend
from services.sandbox.node.endpoints import SandboxEndpoints
from tests.fixtures.sandbox_docker import (
    COMPETITION,
    make_layout,
    make_spec,
)

IMAGE = "mleb-test-busybox"
PY_IMAGE = "mleb-test-python"
COMPAT_IMAGE = "mleb-test-mlebench-env"
# The hardening every sandbox gets, given to the baseline too.
SECURE_RUN = [
    "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--init",
    "--tmpfs", "/tmp:size=64m,mode=1777,nosuid,nodev",
]  # fmt: skip
# Not the tests' label: test sessions running meanwhile remove every container with theirs.
BENCH_LABEL = "mleb.bench"
SECRET = "bench-key:" + "b" * 40
LATENCY_AGENT = (
    "import sys, time\n"
    "for i in range(400):\n"
    "    print(f'{time.time():.6f}', flush=True)\n"
    "    time.sleep(0.005)\n"
)


def remove_bench_containers(client: docker.DockerClient) -> None:
    for container in client.containers.list(
        all=True, filters={"label": BENCH_LABEL}, ignore_removed=True
    ):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Bench:
    def __init__(self, root: Path) -> None:
        self.client = docker.from_env(timeout=300)
        self.backend = DockerBackend(self.client)
        settings = Settings(data_dir=root, database_url="sqlite://", auth_secret=SECRET)
        # No grader runs: launching and logging do not call it.
        self.endpoints = SandboxEndpoints("127.0.0.1:9", settings)
        self.authority = TokenAuthority.from_spec(SECRET)
        self.root = root

    async def launch(
        self, image: str, command: list[str], compat: bool = False
    ) -> tuple[Handle, LaunchSpec]:
        sandbox_id = "b" + uuid.uuid4().hex[:12]
        layout = make_layout(self.root / sandbox_id)
        spec = make_spec(layout, image, command, sandbox_id=sandbox_id, mlebench_compat=compat)
        spec = dataclasses.replace(spec, labels={BENCH_LABEL: "1"})
        token = self.authority.issue(
            Role.SANDBOX, "bench", sandbox_id=sandbox_id, competition_id=COMPETITION
        )
        await self.endpoints.open(sandbox_id, spec.layout.sockets_dir, token, spec.network, [])
        return await self.backend.launch(spec), spec

    async def finish(self, handle: Handle) -> None:
        await self.backend.remove(handle)
        await self.endpoints.close(handle.sandbox_id)

    async def create_to_running(
        self, repeats: int, image: str = IMAGE, compat: bool = False
    ) -> dict[str, float]:
        plain, sandbox, sidecar = [], [], []
        for _ in range(repeats):
            start = time.perf_counter()
            ref = subprocess.run(
                ["docker", "run", "-d", "--label", f"{BENCH_LABEL}=1", *SECURE_RUN,
                 "--entrypoint", "sleep", image, "60"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            plain.append(time.perf_counter() - start)
            self.client.api.remove_container(ref, force=True)
            start = time.perf_counter()
            handle, _ = await self.launch(image, [] if compat else ["sleep", "60"], compat)
            sandbox.append(time.perf_counter() - start)
            await self.finish(handle)
            sidecar.append(await self.sidecar_alone())
        return {
            "plain_s": statistics.median(plain),
            "sandbox_s": statistics.median(sandbox),
            "sidecar_s": statistics.median(sidecar),
        }

    async def sidecar_alone(self) -> float:
        """The network sidecar by itself: created, started, its ready line read."""
        sandbox_id = "b" + uuid.uuid4().hex[:12]
        spec = make_spec(make_layout(self.root / sandbox_id), IMAGE, [], sandbox_id=sandbox_id)
        spec = dataclasses.replace(spec, labels={BENCH_LABEL: "1"})
        spec.layout.sockets_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        sidecar = await asyncio.to_thread(self.backend._create_sidecar, spec)
        await asyncio.to_thread(self.backend._start_sidecar, sidecar)
        took = time.perf_counter() - start
        self.client.api.remove_container(sidecar, force=True)
        return took

    async def throughput(self, lines: int) -> dict[str, float]:
        handle, _ = await self.launch(IMAGE, ["sh", "-c", f"seq 1 {lines}"])
        await self.backend.wait(handle)
        start = time.perf_counter()
        count = 0
        async for _ in self.backend.output(handle):
            count += 1
        ours = time.perf_counter() - start
        assert count == lines, f"read {count} of {lines} lines"
        start = time.perf_counter()
        sdk = sum(
            chunk.count(b"\n")
            for chunk in self.client.api.logs(handle.ref, stream=True, follow=True)
        )
        baseline = time.perf_counter() - start
        assert sdk == lines, f"the SDK read {sdk} of {lines} lines"
        await self.finish(handle)
        return {"ours_lps": lines / ours, "sdk_lps": lines / baseline}

    async def latency(self) -> dict[str, float]:
        handle, _ = await self.launch(PY_IMAGE, ["python3", "-c", LATENCY_AGENT])
        ours = [time.time() - float(line.text) async for line in self.backend.output(handle)]
        await self.finish(handle)
        handle, _ = await self.launch(PY_IMAGE, ["python3", "-c", LATENCY_AGENT])
        sdk = await asyncio.to_thread(self._sdk_latency, handle.ref)
        await self.finish(handle)
        return {
            "ours_p50_ms": percentile(ours, 50) * 1e3,
            "ours_p99_ms": percentile(ours, 99) * 1e3,
            "sdk_p50_ms": percentile(sdk, 50) * 1e3,
            "sdk_p99_ms": percentile(sdk, 99) * 1e3,
        }

    def _sdk_latency(self, ref: str) -> list[float]:
        delays, buffer = [], b""
        for chunk in self.client.api.logs(ref, stream=True, follow=True):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            now = time.time()
            delays += [now - float(line) for line in complete if line]
        return delays

    async def concurrent(self, count: int) -> dict[str, float]:
        async def one() -> tuple[bool, float]:
            start = time.perf_counter()
            handle, _ = await self.launch(IMAGE, ["sh", "-c", "sleep 3; echo done"])
            started = time.perf_counter() - start
            lines = [line.text async for line in self.backend.output(handle)]
            exit_info = await self.backend.wait(handle)
            await self.finish(handle)
            return exit_info.exit_code == 0 and lines == ["done"], started

        start = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        wall = time.perf_counter() - start
        ok = [r for r in results if not isinstance(r, BaseException) and r[0]]
        starts = [r[1] for r in ok]
        return {
            "count": count,
            "completed": len(ok),
            "wall_s": wall,
            "launch_p50_s": percentile(starts, 50) if starts else float("nan"),
            "launch_max_s": max(starts) if starts else float("nan"),
        }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--concurrent", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mleb-bench-") as tmp:
        bench = Bench(Path(tmp))
        try:
            start = await bench.create_to_running(args.repeats)
            compat = await bench.create_to_running(args.repeats, COMPAT_IMAGE, compat=True)
            flow = await bench.throughput(args.lines)
            delay = await bench.latency()
            many = await bench.concurrent(args.concurrent)
        finally:
            remove_bench_containers(bench.client)
            await bench.endpoints.aclose()
    info = bench.client.version()
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Docker {info['Version']} ({bench.client.info()['Driver']}), {platform.platform()}\n"
    )
    print("| measure | baseline | mleb sandbox | ratio |\n|---|---|---|---|")
    for name, figures in (("", start), (" (MLE-bench image, compat mode)", compat)):
        print(
            f"| create-to-running{name}, median of {args.repeats} (hardened `docker run -d`) | "
            f"{figures['plain_s']:.3f} s | {figures['sandbox_s']:.3f} s | "
            f"{figures['sandbox_s'] / figures['plain_s']:.2f}x |"
        )
    floor = start["plain_s"] + start["sidecar_s"]
    print(
        f"| the sidecar alone (created, started, ready line read), median of {args.repeats} | "
        f"hardened `docker run -d`: {start['plain_s']:.3f} s | {start['sidecar_s']:.3f} s | "
        f"{start['sidecar_s'] / start['plain_s']:.2f}x; plain + sidecar, one after the other: "
        f"{floor / start['plain_s']:.2f}x |"
    )
    print(
        f"| log throughput, {args.lines} lines (SDK merged logs stream) | "
        f"{flow['sdk_lps']:,.0f} lines/s | {flow['ours_lps']:,.0f} lines/s | "
        f"{flow['ours_lps'] / flow['sdk_lps']:.2f}x |"
    )
    for q in ("p50", "p99"):
        print(
            f"| line latency {q}, write to arrival (SDK stream) | "
            f"{delay[f'sdk_{q}_ms']:.1f} ms | {delay[f'ours_{q}_ms']:.1f} ms | "
            f"{delay[f'ours_{q}_ms'] / delay[f'sdk_{q}_ms']:.2f}x |"
        )
    print(
        f"\n{many['count']} concurrent sandboxes (backend + endpoints, `sleep 3; echo done`): "
        f"{many['completed']}/{many['count']} completed with their output, none lost; "
        f"wall {many['wall_s']:.1f} s, launch p50 {many['launch_p50_s']:.2f} s, "
        f"max {many['launch_max_s']:.2f} s."
    )


if __name__ == "__main__":
    asyncio.run(main())
