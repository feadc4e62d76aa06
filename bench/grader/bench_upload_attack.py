"""Grader memory under the validation-upload attacks of issue 10, against an honest baseline
measured in the same run. Prints a Markdown table; see docs/benchmarks.md.

    PYTHONPATH=. .venv/bin/python bench/grader/bench_upload_attack.py [--repeats 3]

Each scenario gets a fresh `mleb serve grader` process (peak RSS is the kernel's VmHWM, a
high-water mark) against one registry process. Sandbox tokens, so the sandbox limits apply:
- baseline: 8 honest validations of the sample-sized submission, one after another;
- one huge: one sandbox streams 1.5 GiB;
- four concurrent: four sandboxes each stream 400 MiB at once;
- one sandbox x4: one sandbox streams 400 MiB four times at once.
Every figure is a median over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import grpc
from mleb.grader.v1 import grader_service_pb2 as pb
from mleb.grader.v1 import grader_service_pb2_grpc

from bench.grader.bench_grader import FAMILIES, SECRET, make_competition, rss_mb
from services.common.auth import Role, TokenAuthority
from services.common.settings import Settings
from services.registry.core import RegistryCore
from services.registry.importers.install import CompetitionInstaller
from services.registry.importers.own_format import import_competition
from tests.fixtures.processes import settings_env, spawn_server

MIB = 1024**2
FAMILY = FAMILIES["accuracy"]
COMPETITION = FAMILY.competition
_CHUNK = b"1,2\n" * (MIB // 4)


async def _upload(stub, token: str, total: int, data: bytes | None = None) -> dict:
    sent = 0

    async def requests():
        nonlocal sent
        yield pb.ValidateSubmissionRequest(header=pb.SubmissionHeader(competition_id=COMPETITION))
        if data is not None:
            sent = len(data)
            yield pb.ValidateSubmissionRequest(chunk=data)
            return
        while sent < total:
            sent += len(_CHUNK)
            yield pb.ValidateSubmissionRequest(chunk=_CHUNK)

    started = time.perf_counter()
    try:
        await stub.ValidateSubmission(
            requests(), metadata=(("authorization", f"Bearer {token}"),), timeout=600
        )
        code = "OK"
    except grpc.aio.AioRpcError as error:
        code = error.code().name
    return {"code": code, "sent_mib": sent / MIB, "s": time.perf_counter() - started}


def _token(sandbox: str) -> str:
    return TokenAuthority.from_spec(SECRET).issue(
        Role.SANDBOX, f"sandbox:{sandbox}", sandbox_id=sandbox, competition_id=COMPETITION
    )


async def _scenario(name: str, address: str, honest: bytes) -> list[dict]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = grader_service_pb2_grpc.GraderServiceStub(channel)
        if name == "baseline":
            return [await _upload(stub, _token(f"b{i}"), 0, honest) for i in range(8)]
        if name == "one huge (1.5 GiB)":
            return [await _upload(stub, _token("huge"), 3 * 1024 * MIB // 2)]
        if name == "four sandboxes x 400 MiB":
            tokens = [_token(f"s{i}") for i in range(4)]
        else:
            tokens = [_token("same")] * 4
        return list(await asyncio.gather(*(_upload(stub, t, 400 * MIB) for t in tokens)))


SCENARIOS = [
    "baseline",
    "one huge (1.5 GiB)",
    "four sandboxes x 400 MiB",
    "one sandbox x 4 x 400 MiB",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in SCENARIOS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data", database_url=f"sqlite:///{root / 'mleb.db'}", auth_secret=SECRET
        )
        folder, submission = make_competition(root, FAMILY, args.rows)
        core = RegistryCore.from_settings(settings)
        import_competition(CompetitionInstaller(core.sessions, core.storage), folder)
        core.close()
        answers_bytes = (folder / "private" / "test.csv").stat().st_size
        registry = spawn_server("registry", settings_env(settings))
        grader_env = settings_env(replace(settings, registry_addr=registry.address))
        try:
            for _ in range(args.repeats):
                for name in SCENARIOS:
                    grader = spawn_server("grader", grader_env)
                    try:
                        calls = asyncio.run(_scenario(name, grader.address, submission))
                        results[name].append({"rss": rss_mb(grader.process.pid), "calls": calls})
                    finally:
                        grader.terminate()
        finally:
            registry.terminate()
    base = statistics.median(r["rss"] for r in results["baseline"])
    print(f"machine: {platform.machine()}, {platform.python_version()}, answers {answers_bytes} B")
    print("| scenario | grader peak RSS | vs baseline | sent before refusal (max) | codes |")
    print("|---|---|---|---|---|")
    for name in SCENARIOS:
        rss = statistics.median(r["rss"] for r in results[name])
        calls = [c for r in results[name] for c in r["calls"]]
        codes = sorted({c["code"] for c in calls})
        sent = max(c["sent_mib"] for c in calls)
        print(
            f"| {name} | {rss:.0f} MB | {rss / base:.2f}x | {sent:.0f} MiB | {', '.join(codes)} |"
        )
    print(json.dumps({k: [r["rss"] for r in v] for k, v in results.items()}))


if __name__ == "__main__":
    main()
