"""Public data staging: first fetch against `cp -r`, and sandbox starts against `docker run`.

    PYTHONPATH=clients/python/src:. .venv/bin/python bench/sandbox/bench_staging.py

Generates competitions of 1, 10 and about 200,000 public files (the largest also holds a few
large files; about 1 GB in all) under a temporary folder, deleted afterwards, and imports
them into the demo's stack (registry, grader and sandbox service in this process; SQLite;
Docker backend). For each it records, as medians, all in the same run:

- the first fetch on a node (LayoutBuilder.public_data into an empty cache, through the
  registry's gRPC API) against `cp -r` of the registry's own copy of the public folder;
- the create-to-running time of a competition's first sandbox on the node (which fetches)
  and of the second (which reuses the cache), from the service's own timestamps, against
  `docker run -d` with a plain read-only bind mount of the same folder and the same security
  options;
- what the second sandbox's data costs with per-file hard links (the local backend's way,
  and every backend's before) against the shared read-only mount.

Needs the images from scripts/build_test_images.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from google.protobuf import duration_pb2
from mleb.client import NO_DEADLINE, AsyncClient
from mleb.sandbox.v1 import sandbox_pb2, sandbox_service_pb2

from services.common.auth import Role, TokenAuthority
from services.common.channels import bearer_metadata, service_channel
from services.demo import DemoStack
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller
from services.registry.importers.own_format import import_competition
from services.sandbox.lifecycle.threads import WorkerThreads
from services.sandbox.node.layout import LayoutBuilder
from services.sandbox.node.public_cache import PublicCache
from services.sandbox.node.registry_client import RegistryCompetitions
from services.sandbox.records import DescriptionVariant
from tests.fixtures.registry_trees import build_own_competition

IMAGE = "mleb-test-busybox"
SECURE_RUN = [
    "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--init",
    "--network", "none",
]  # fmt: skip
AGENT = ["sh", "-c", "test -s /home/data/description.md && ls /home/data > /dev/null"]
SMALL_BYTES = 1024
PER_FOLDER = 1000


def generate(root: Path, competition_id: str, files: int, large: int, large_bytes: int) -> Path:
    """An own-format competition with `files` public files, `large` of them large."""
    folder = build_own_competition(root, competition_id)
    public = folder / "public"
    # sample_submission.csv (required) and train.csv are two of the files.
    if files < 2:
        (public / "train.csv").unlink()
    for index in range(max(0, files - 2 - large)):
        target = public / "files" / f"{index // PER_FOLDER:04d}" / f"{index}.txt"
        if index % PER_FOLDER == 0:
            target.parent.mkdir(parents=True)
        target.write_bytes(index.to_bytes(8, "big") * (SMALL_BYTES // 8))
    block = os.urandom(1 << 20)
    for index in range(large):
        with (public / f"large-{index}.bin").open("wb") as handle:
            for _ in range(large_bytes >> 20):
                handle.write(block)
    return folder


class Run:
    def __init__(self, stack: DemoStack, work: Path) -> None:
        self.stack = stack
        self.work = work
        self.registry = RegistryCore.from_settings(stack.settings)
        token = TokenAuthority.from_spec(stack.settings.auth_secret).issue(Role.SERVICE, "bench")
        self.channel = service_channel(stack.settings.registry_addr, stack.settings)
        self.source = RegistryCompetitions(self.channel, bearer_metadata(token))
        self.threads = WorkerThreads()

    def close(self) -> None:
        self.registry.close()
        self.threads.shutdown()

    def public_dir(self, competition_id: str) -> Path:
        return self.registry.storage.public_dir(competition_id)

    async def fetch_vs_copy(self, competition_id: str, repeats: int) -> tuple[float, float]:
        competition = await self.source.get(competition_id, DescriptionVariant.PLAIN)
        fetches, copies = [], []
        for _ in range(repeats):
            cache = self.work / "fetch-cache"
            builder = LayoutBuilder(self.source, PublicCache(cache), self.threads)
            start = time.perf_counter()
            await builder.public_data(competition, "bench")
            fetches.append(time.perf_counter() - start)
            shutil.rmtree(cache)
            copy = self.work / "copy"
            start = time.perf_counter()
            subprocess.run(
                ["cp", "-r", str(self.public_dir(competition_id)), str(copy)], check=True
            )
            copies.append(time.perf_counter() - start)
            shutil.rmtree(copy)
        return statistics.median(fetches), statistics.median(copies)

    async def links_vs_mount(self, competition_id: str, repeats: int) -> tuple[float, float]:
        """The second sandbox's folder: per-file links against the shared mount's one file."""
        competition = await self.source.get(competition_id, DescriptionVariant.PLAIN)
        cache = self.work / "prepare-cache"
        builder = LayoutBuilder(self.source, PublicCache(cache), self.threads)
        await builder.public_data(competition, "bench")
        timings: dict[bool, list[float]] = {True: [], False: []}
        for index in range(repeats):
            for shared in (False, True):
                root = self.work / f"prepare-{index}-{shared}"
                start = time.perf_counter()
                await builder.prepare(root, competition, "bench", shared_mount=shared)
                timings[shared].append(time.perf_counter() - start)
                shutil.rmtree(root)
        shutil.rmtree(cache)
        return statistics.median(timings[False]), statistics.median(timings[True])

    async def sandbox(self, client: AsyncClient, competition_id: str) -> float:
        request = sandbox_service_pb2.CreateSandboxRequest(
            competition_id=competition_id,
            image=IMAGE,
            command=AGENT,
            time_limit=duration_pb2.Duration(seconds=600),
            resources=sandbox_pb2.Resources(cpus=0.5, memory_bytes=128 * 1024**2),
        )
        sandbox = (await client.create_sandbox(request)).sandbox
        async for _ in client.stream_logs(sandbox.id, follow=True, timeout=NO_DEADLINE):
            pass
        sandbox = (await client.get_sandbox(sandbox.id)).sandbox
        if sandbox.state != sandbox_pb2.SANDBOX_STATE_SUCCEEDED:
            raise RuntimeError(f"sandbox {sandbox.id} ended {sandbox.state}: {sandbox.message}")
        started = sandbox.started_at.ToDatetime() - sandbox.created_at.ToDatetime()
        return started.total_seconds()

    async def first_and_second(
        self, client: AsyncClient, competition_id: str, repeats: int, seconds: int
    ) -> tuple[float, float]:
        """Medians of `repeats` first sandboxes, each followed by `seconds` more."""
        cache = self.stack.settings.data_dir / "sandboxes" / "public-data"
        firsts: list[float] = []
        later: list[float] = []
        for _ in range(repeats):
            # Nothing runs between repeats: emptying the node's cache makes the next one first.
            for entry in (cache / competition_id, cache / ".state" / competition_id):
                shutil.rmtree(entry, ignore_errors=True)
            firsts.append(await self.sandbox(client, competition_id))
            for _ in range(seconds):
                later.append(await self.sandbox(client, competition_id))
        return statistics.median(firsts), statistics.median(later)

    def docker_run(self, competition_id: str, repeats: int) -> float:
        mount = f"type=bind,source={self.public_dir(competition_id)},target=/home/data,readonly"
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            ref = subprocess.run(
                ["docker", "run", "-d", *SECURE_RUN, "--mount", mount, IMAGE, *AGENT],
                check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            timings.append(time.perf_counter() - start)
            subprocess.run(["docker", "rm", "-f", ref], check=True, capture_output=True)
        return statistics.median(timings)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--large", type=int, default=3)
    parser.add_argument("--large-bytes", type=int, default=200 << 20)
    parser.add_argument("--repeats", type=int, default=3)
    # Each repeat of the big competition copies and fetches the whole tree: minutes apiece.
    parser.add_argument("--many-repeats", type=int, default=1)
    args = parser.parse_args()
    sizes = {"one-file": (1, 0), "ten-files": (10, 0), "many-files": (args.files, args.large)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="mleb-bench-staging-") as temp:
        root = Path(temp)
        root.chmod(0o711)
        stack = DemoStack(root / "stack", "docker")
        await stack.start()
        run = Run(stack, root)
        try:
            installer = CompetitionInstaller(run.registry.sessions, run.registry.storage)
            for competition_id, (files, large) in sizes.items():
                source = generate(root / "source", competition_id, files, large, args.large_bytes)
                await asyncio.to_thread(import_competition, installer, source)
                shutil.rmtree(root / "source")
            async with stack.client() as client:
                for competition_id, (files, _large) in sizes.items():
                    many = competition_id == "many-files"
                    repeats = args.many_repeats if many else args.repeats
                    fetch, copy = await run.fetch_vs_copy(competition_id, repeats)
                    links, mount = await run.links_vs_mount(competition_id, repeats)
                    first, second = await run.first_and_second(
                        client, competition_id, repeats, args.repeats
                    )
                    # Cheap at any size; the second sandbox's ratio rests on it.
                    plain = run.docker_run(competition_id, args.repeats)
                    rows.append((files, fetch, copy, first, second, plain, links, mount))
                    print(f"{competition_id}: {rows[-1]}", flush=True)
        finally:
            run.close()
            await run.channel.close()
            await stack.stop()
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"Medians of {args.repeats} ({args.many_repeats} for the largest).\n")
    print(
        "| public files | first fetch / `cp -r` | first sandbox / `docker run -d` | "
        "second sandbox / `docker run -d` | second sandbox's data: links / shared mount |"
    )
    print("|---|---|---|---|---|")
    for files, fetch, copy, first, second, plain, links, mount in rows:
        print(
            f"| {files:,} | {fetch:.2f} s / {copy:.2f} s = **{fetch / copy:.2f}x** | "
            f"{first:.2f} s / {plain:.2f} s = {first / plain:.2f}x | "
            f"{second:.2f} s / {plain:.2f} s = **{second / plain:.2f}x** | "
            f"{links:.3f} s / {mount:.3f} s = {links / mount:.0f}x |"
        )


if __name__ == "__main__":
    asyncio.run(main())
